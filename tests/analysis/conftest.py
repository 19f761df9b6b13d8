from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def apistrat() -> pd.DataFrame:
    return pd.read_csv(DATA / "apistrat.csv")


@pytest.fixture(scope="session")
def apiclus1() -> pd.DataFrame:
    return pd.read_csv(DATA / "apiclus1.csv")


@pytest.fixture(scope="session")
def fpc_data() -> pd.DataFrame:
    return pd.read_csv(DATA / "fpc.csv")


@pytest.fixture(scope="session")
def apiclus2() -> pd.DataFrame:
    return pd.read_csv(DATA / "apiclus2.csv")
