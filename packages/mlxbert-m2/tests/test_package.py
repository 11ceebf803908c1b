import mlxbert_m2


def test_package_imports_and_has_version():
    assert mlxbert_m2.__version__ == "0.1.0"
    assert "__version__" in mlxbert_m2.__all__
