"""Build hook: a wheel carries the repository's top-level data folders inside the package.

``questionnaires/``, ``templates/``, ``migrations/`` and ``alembic.ini`` stay at the top of the repository;
building a (non-editable) wheel copies them to ``survey_service/bundled/``, where
:func:`survey_service.config.data_path` finds them wherever the wheel is installed. An editable install
reads them in place.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("questionnaires", "templates", "migrations", "alembic.ini")


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "survey_service" / "bundled"
        shutil.rmtree(target, ignore_errors=True)  # a file deleted from the repository leaves no stale copy
        for name in BUNDLED:
            source, dest = ROOT / name, target / name
            if source.is_dir():
                shutil.copytree(source, dest, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithData})
