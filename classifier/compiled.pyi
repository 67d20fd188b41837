# Types of the compiled classifier engine (classifier/compiled.pyx), for mypy.
from core.models import Labels

MAX_TABLE: int

class Engine:
    def __init__(self, lexicon: object, max_table: int = ...) -> None: ...
    def classify(self, title: str, text: str) -> Labels: ...
