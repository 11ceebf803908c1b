import mlxbert_core


def test_package_imports_and_has_version():
    assert mlxbert_core.__version__ == "0.1.0"
    assert "__version__" in mlxbert_core.__all__
