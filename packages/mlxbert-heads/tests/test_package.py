import ast
import pathlib

import mlxbert_heads

SRC = pathlib.Path(mlxbert_heads.__file__).parent


def test_package_imports_and_has_version():
    assert mlxbert_heads.__version__ == "0.1.0"
    assert "__version__" in mlxbert_heads.__all__
    for name in mlxbert_heads.__all__:
        assert hasattr(mlxbert_heads, name), name


def test_public_contract_names():
    for name in (
        "BinaryClassificationHead",
        "MulticlassClassificationHead",
        "MultilabelClassificationHead",
        "RegressionHead",
        "OrdinalRegressionHead",
        "TimeSeriesRegressionHead",
        "create_head",
        "register_head",
        "TaskModel",
    ):
        assert name in mlxbert_heads.__all__
    for name in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "top_k_accuracy",
        "subset_accuracy",
        "hamming_loss",
        "mse",
        "rmse",
        "rmsle",
        "mae",
        "r2",
        "mape",
        "directional_accuracy",
        "pearson",
        "spearman",
        "kendall_tau",
        "matthews_corrcoef",
        "quadratic_weighted_kappa",
    ):
        assert callable(getattr(mlxbert_heads.metrics, name))


def test_runtime_imports_only_mlx_numpy_and_stdlib():
    import sys

    allowed = {"mlx", "numpy", "mlxbert_heads", "__future__"} | set(sys.stdlib_module_names)
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
