"""Declarative board descriptions (YAML beside this module) and their pin constraint files."""
from boards.registry import Board, all_boards, get_board

__all__ = ["Board", "all_boards", "get_board"]
