import mlxbert_heads


def test_package_imports_and_has_version():
    assert mlxbert_heads.__version__ == "0.1.0"
    assert "__version__" in mlxbert_heads.__all__
