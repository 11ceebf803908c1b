import mlxbert_lora


def test_package_imports_and_has_version():
    assert mlxbert_lora.__version__ == "0.1.0"
    assert "__version__" in mlxbert_lora.__all__
