"""The package's module map: no import cycle (lazy imports inside functions included), and no module over about
300 lines without a reason at its top."""
import ast

from polypersona_utils import paths
from polypersona_utils.steps import import_graph  # the graph make reads its prerequisites from

LONG_MODULE_LINES = 300


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "evaluation" in graph and graph["evaluation"]  # the graph is really read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_long_modules_say_why_at_their_top():
    for path in sorted(paths.PACKAGE_DIR.glob("*.py")):
        if len(path.read_text().splitlines()) > LONG_MODULE_LINES:
            docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "Longer than 300 lines" in docstring, f"{path.name}: over {LONG_MODULE_LINES} lines, no reason"
