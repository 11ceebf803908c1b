import mlxbert_glue


def test_package_imports_and_has_version():
    assert mlxbert_glue.__version__ == "0.1.0"
    assert "__version__" in mlxbert_glue.__all__
