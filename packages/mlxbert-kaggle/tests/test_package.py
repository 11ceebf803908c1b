import mlxbert_kaggle


def test_package_imports_and_has_version():
    assert mlxbert_kaggle.__version__ == "0.1.0"
    assert "__version__" in mlxbert_kaggle.__all__
