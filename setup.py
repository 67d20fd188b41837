"""Builds newsmon's optional C extension with Cython (everything else is in pyproject.toml):
``classifier.compiled`` (classifier/compiled.pyx), the classifier's hot path.

It is optional: without a C compiler the install goes on, ``Classifier`` runs its Python
engine (same labels, slower) and ``make bench`` says which engine ran.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("classifier.compiled", ["classifier/compiled.pyx"], optional=True),
        ],
        compiler_directives={"language_level": "3"},
    )
)
