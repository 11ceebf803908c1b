import mlx.core as mx
import mlx.nn as nn
import pytest

from mlxbert_quant import model_nbytes, quantization_report, quantize


class Wide(nn.Module):
    """Only quantizable weight matrices (no biases) so the ratio is the format's own."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(512, 256, bias=False)
        self.b = nn.Linear(256, 512, bias=False)


@pytest.mark.parametrize(
    ("bits", "expected"),
    # packed codes: bits/32 of fp32; scales + biases: 2 fp32 per 64 values = 1/32
    [(8, 8 / 32 + 1 / 32), (4, 4 / 32 + 1 / 32)],
)
def test_model_nbytes_drops_by_the_format_ratio(bits, expected):
    model = Wide()
    float_bytes = model_nbytes(model)
    assert float_bytes == 2 * 512 * 256 * 4
    quantize(model, bits=bits, group_size=64)
    ratio = model_nbytes(model) / float_bytes
    assert ratio == pytest.approx(expected)
    assert ratio <= {8: 0.29, 4: 0.16}[bits]
    report = quantization_report(model)
    assert report.quantized.ratio == pytest.approx(expected)
    assert report.total.before == float_bytes
    assert report.total.after == model_nbytes(model)


def test_report_per_layer_type_with_and_without_reference(make_model):
    reference = make_model()
    model = quantize(make_model(), bits=8)
    for report in (quantization_report(model), quantization_report(model, reference=reference)):
        rows = {r.name: r for r in report.rows}
        assert set(rows) == {"Linear", "Embedding", "Norm"}
        assert rows["Embedding"].ratio == 1.0  # kept in floats by default
        assert rows["Norm"].ratio == 1.0
        assert 0.28 < rows["Linear"].ratio < 0.35  # float classifier and biases included
        assert report.num_quantized == 4
        assert report.total.before == model_nbytes(reference)
        assert report.total.after == model_nbytes(model)
        assert report.quantized.ratio == pytest.approx(0.28, abs=0.01)
    text = str(report)
    assert "Linear" in text and "quantized layers (4)" in text and "MiB" in text
    assert report.as_dict()["quantized layers"]["count"] == 4


def test_report_for_bfloat16_and_float_modes(make_model):
    model = make_model()
    model.set_dtype(mx.bfloat16)
    before = model_nbytes(model)
    quantize(model, mode="mxfp8", quantize_embeddings=True)
    report = quantization_report(model)
    assert report.total.before == before
    # 8-bit codes + one uint8 scale per 32 values vs bf16: (8 + 8/32) / 16
    assert report.quantized.ratio == pytest.approx(8.25 / 16, abs=0.01)
