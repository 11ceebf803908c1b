import mlxbert_quant


def test_package_imports_and_has_version():
    assert mlxbert_quant.__version__ == "0.1.0"
    assert "__version__" in mlxbert_quant.__all__
