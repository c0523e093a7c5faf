import pytest
from synthetic_results import build_results


@pytest.fixture
def synthetic_results():
    return build_results()
