"""The package's module map: no import cycle (lazy imports inside functions included), the stages layered (a stage
imports only from the stages before it and the shared modules at the top), no module over about 400 lines."""
from polypersona_utils import paths
from polypersona_utils.make_plan import import_graph, package_modules  # the graph make reads its prerequisites from

MAX_MODULE_LINES = 400
# The stages in the order data flows through them (the package docstring lists them so: checked below).
STAGES = ("reporting", "llm", "dataset", "modeling", "evaluation", "panel", "runs")
# Top-level modules that only the command line and make run; no module of a stage imports them.
ENTRY_POINTS = {"cli", "__main__", "make_plan", "notebook_start"}


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


def ranks(graph: dict[str, set[str]]) -> dict[str, int]:
    """A stage module's rank is its stage's place in STAGES; a top-level module's is the highest rank it imports
    (-1 for one that imports no stage)."""
    rank = {m: STAGES.index(m.split(".")[0]) for m in graph if "." in m}

    def top(module, seen=()):
        if module not in rank:
            rank[module] = max([top(m, seen + (module,)) for m in graph[module] if m not in seen], default=-1)
        return rank[module]

    for module in graph:
        top(module)
    return rank


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    rank = ranks(graph)
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                  if rank[d] > rank[m] or (d in ENTRY_POINTS and m not in ENTRY_POINTS))


def test_the_layer_check_finds_an_upward_import():
    graph = {"paths": set(), "config": {"dataset.surveys"}, "dataset.surveys": {"paths"},
             "dataset.records": {"config", "reporting.tables"}, "reporting.tables": {"dataset.surveys"}}
    assert layer_breaks(graph) == ["reporting.tables -> dataset.surveys"]
    assert layer_breaks({"dataset.a": {"cli"}, "cli": set()}) == ["dataset.a -> cli"]


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "panel.report" in graph and "panel.synthetic" in graph["panel.report"]  # the graph is really read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_stages_are_layered():
    graph = import_graph()
    assert {m.split(".")[0] for m in graph if "." in m} == set(STAGES)
    listed = [line.split()[0] for line in (paths.PACKAGE_DIR / "__init__.py").read_text().splitlines()
              if line.startswith("    ") and line.split()[0] in STAGES]
    assert listed == list(STAGES)  # the package docstring draws the same order
    assert layer_breaks(graph) == []


def test_no_module_is_long():
    long = {name: n for name, path in package_modules().items() if (n := len(path.read_text().splitlines())) >
            MAX_MODULE_LINES}
    assert not long, long


def test_every_stage_says_what_it_reads_and_writes():
    for stage in STAGES:
        doc = (paths.PACKAGE_DIR / stage / "__init__.py").read_text()
        assert doc.startswith('"""') and len(doc.splitlines()) >= 3, stage
