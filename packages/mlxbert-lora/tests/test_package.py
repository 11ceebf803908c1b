import ast
import pathlib
import sys

import mlxbert_lora

SRC = pathlib.Path(mlxbert_lora.__file__).parent


def test_package_imports_and_has_version():
    assert mlxbert_lora.__version__ == "0.1.0"
    assert "__version__" in mlxbert_lora.__all__
    for name in mlxbert_lora.__all__:
        assert hasattr(mlxbert_lora, name), name


def test_runtime_imports_only_mlx_numpy_and_stdlib():
    # The test environment may hold other mlxbert packages (for tests that combine them);
    # the package itself imports none of them.
    allowed = {"mlx", "numpy", "mlxbert_lora", "__future__"} | set(sys.stdlib_module_names)
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
