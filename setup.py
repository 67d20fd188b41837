"""Builds newsmon's two optional C extensions with Cython (everything else is in
pyproject.toml):

- ``classifier.compiled`` (classifier/compiled.pyx): the classifier's hot path.
- ``classifier.verdict`` (classifier/verdict.py, compiled as it is): the decisions both
  engines share. Annotations are not used for typing, so it behaves as the Python source.

Both are optional: without a C compiler the install goes on, ``Classifier`` runs its Python
engine (same labels, slower) and ``make bench`` says so.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("classifier.compiled", ["classifier/compiled.pyx"], optional=True),
            Extension("classifier.verdict", ["classifier/verdict.py"], optional=True),
        ],
        compiler_directives={"language_level": "3", "annotation_typing": False},
    )
)
