"""`core.Registry`: names, close-match errors, clashes, fnmatch listing, discovery of a folder's modules; and, for
each of the seven families, that one new module in its folder is all it takes to add an entry."""

import sys
import textwrap

import pytest

from finetuner.core.registry import Registry, origin


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fresh importable package ``name`` under tmp_path; ``write(name, {module: source})`` fills it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def write(name, modules):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for module, source in modules.items():
            (folder / f"{module}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield write
    for name in created:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def test_names_lookup_and_listing():
    shapes = Registry("shape")
    shapes.register("circle", 1)
    shapes.register("cube", 2, aliases=("box",))
    assert shapes.get("circle") == 1 and shapes.get("box") == shapes.get("cube") == 2
    assert shapes.names() == ["box", "circle", "cube"] and shapes.names("c*") == ["circle", "cube"]
    assert list(shapes) == shapes.names() and len(shapes) == 3
    assert "cube" in shapes and "sphere" not in shapes and shapes.find("sphere") is None
    assert shapes.unregister("circle") == 1 and "circle" not in shapes


def test_an_unknown_name_lists_close_matches_and_the_fix():
    shapes = Registry("shape", fix="Register one with shapes.register(name, value).")
    for name in ("circle", "cube", "triangle"):
        shapes.register(name, name)
    with pytest.raises(ValueError, match=r"Unknown shape 'circel'\. Did you mean 'circle'\? Known: 'circle', 'cube', "
                       r"'triangle'\. Register one with"):
        shapes.get("circel")
    with pytest.raises(ValueError, match=r"Unknown shape 'zzz'\. Known: 'circle'"):  # no close match: no guess
        shapes.get("zzz")
    with pytest.raises(ValueError, match="Unknown shape 'zzz'"):
        shapes.unregister("zzz")


def test_a_clash_is_refused_naming_both_and_leaves_nothing_half_registered():
    shapes = Registry("shape")

    @shapes.register("circle")
    def circle():
        return "mine"

    def other():
        return "theirs"

    with pytest.raises(ValueError, match=r"shape named 'circle' is already registered \(.*circle\): give .*other"):
        shapes.register("round", other, aliases=("circle",))
    assert "round" not in shapes and shapes.get("circle") is circle
    redefined = type("Circle", (), {"__module__": circle.__module__, "__qualname__": circle.__qualname__})
    assert origin(redefined) == origin(circle)
    assert shapes.register("circle", redefined) is redefined  # the same definition again replaces the old one


def test_the_base_is_checked():
    numbers = Registry("number", base=int)
    numbers.register("one", 1)
    numbers.register("bool", bool)  # a subclass
    with pytest.raises(TypeError, match="A number must be a int"):
        numbers.register("pi", 3.14)


def _registry_module(name):
    return f"from finetuner.core.registry import Registry\nSHAPES = Registry('shape', {name!r})\n"


def _plugin(name, shape, value):
    return f"from {name}._registry import SHAPES\nSHAPES.register({shape!r}, {value!r})\n"


def test_discovery_imports_each_public_module_of_the_folder_once_on_first_lookup(package):
    name = "plugins_generic"
    package(
        name,
        {
            "_registry": _registry_module(name),  # private modules are not imported by discovery
            "circle": _plugin(name, "circle", "o"),
            "square": _plugin(name, "square", "[]"),
            "_helper": "raise RuntimeError('private modules are not imported')\n",
            "notes": "NOT_A_PLUGIN = True\n",  # a module that registers nothing is tolerated
        },
    )
    registry = __import__(f"{name}._registry", fromlist=["SHAPES"]).SHAPES
    assert f"{name}.circle" not in sys.modules  # nothing imported before a lookup
    assert registry.names() == ["circle", "square"] and registry.get("square") == "[]"
    assert f"{name}.notes" in sys.modules and f"{name}._helper" not in sys.modules


def test_a_registration_from_outside_the_folder_finds_the_clash_with_a_built_in(package):
    name = "plugins_clash"
    package(name, {"_registry": _registry_module(name), "circle": _plugin(name, "circle", 1)})
    registry = __import__(f"{name}._registry", fromlist=["SHAPES"]).SHAPES

    def mine():
        pass

    with pytest.raises(ValueError, match=r"shape named 'circle' is already registered \(builtins.int"):
        registry.register("circle", mine)  # the built-ins were imported first, whatever the order


def test_a_failing_module_fails_the_lookup_and_is_retried(package):
    name = package("plugins_broken", {"broken": "raise ImportError('missing dependency')\n"})
    registry = Registry("shape", name)
    for _ in range(2):
        with pytest.raises(ImportError, match="missing dependency"):
            registry.names()


# One new module per family, in a folder the family's registry is pointed at: (registry module, registry name,
# the new module's source, a check through the family's public functions).
FAMILIES = {
    "model backend": (
        "finetuner.models.backend",
        "BACKENDS",
        """
        from finetuner.models import Backend, register_backend

        class DroppedBackend(Backend):
            name = "dropped"
            def rebuild(self, spec, folder=None):
                raise NotImplementedError

        register_backend(DroppedBackend())
        """,
        lambda: __import__("finetuner.models", fromlist=["x"]).get_backend("dropped").name == "dropped",
    ),
    "head": (
        "finetuner.tailor.heads.base",
        "HEADS",
        """
        from torch import nn
        from finetuner.tailor import Head

        class DroppedHead(Head, name="dropped"):
            def __init__(self, in_features, out_features):
                super().__init__()
                self.linear = nn.Linear(in_features, out_features)
            def forward(self, x):
                return self.linear(x)
            def config(self):
                return {"in_features": self.linear.in_features, "out_features": self.linear.out_features}
        """,
        lambda: type(__import__("finetuner.tailor", fromlist=["x"]).create_head("dropped", 4, 2)).__name__
        == "DroppedHead",
    ),
    "pair loss": (
        "finetuner.training.pair_losses.base",
        "PAIR_LOSSES",
        """
        from finetuner.training.pair_losses import PairLoss

        class DroppedLoss(PairLoss):
            def compute_loss(self, query_embeddings, document_embeddings, scores, negatives):
                return (query_embeddings - document_embeddings).pow(2).mean()
        """,
        lambda: __import__("finetuner.training.pair_losses", fromlist=["x"]).find_pair_loss("DroppedLoss").__name__
        == "DroppedLoss",
    ),
    "data format": (
        "finetuner.data.formats.base",
        "DATA_FORMATS",
        """
        from finetuner.data import DataFormat, LabeledData, register_format

        class DroppedFormat(DataFormat):
            name, description = "dropped", "the string 'dropped'"
            def can_read(self, source):
                return source == "dropped"
            def read(self, source, columns, kind):
                return LabeledData(["a", "b"], [0, 1], ["x", "y"])

        register_format(DroppedFormat())
        """,
        lambda: __import__("finetuner.data", fromlist=["x"]).load_data("dropped").classes == ["x", "y"],
    ),
    "export format": (
        "finetuner.export.registry",
        "FORMATS",
        """
        from finetuner.export import register_exporter

        @register_exporter("dropped")
        def export_dropped(model, path):
            return path / str(model)
        """,
        lambda: __import__("finetuner.export", fromlist=["x"]).export_model(7, "out", format="dropped").name == "7",
    ),
    "tracker": (
        "finetuner.training.trackers.base",
        "TRACKERS",
        """
        from finetuner.training.trackers import Tracker, register_tracker

        @register_tracker("dropped")
        class DroppedTracker(Tracker):
            pass
        """,
        lambda: [type(t).__name__ for t in __import__("finetuner.training.trackers", fromlist=["x"]).build_trackers(
            ["dropped"], "out")] == ["DroppedTracker"],
    ),
    "preprocessing kind": (
        "finetuner.data.preprocessing.base",
        "PREPROCESSINGS",
        """
        from finetuner.data.preprocessing import register_preprocessing

        @register_preprocessing("dropped")
        class DroppedPreprocessing:
            kind = "dropped"
            def __init__(self, size):
                self.size = size
            @classmethod
            def from_config(cls, config, folder=None):
                return cls(config["size"])
        """,
        lambda: __import__("finetuner.data.preprocessing", fromlist=["x"]).preprocessing_from_config(
            {"kind": "dropped", "size": 3}).size == 3,
    ),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_one_new_module_in_the_folder_adds_an_entry(family, package, monkeypatch):
    module_name, attribute, source, check = FAMILIES[family]
    module = __import__(module_name, fromlist=[attribute])
    real = getattr(module, attribute)
    assert real.family == family and real.package  # every family discovers its own folder
    name = package(f"plugins_{family.replace(' ', '_')}", {"dropped": source})
    monkeypatch.setattr(module, attribute, Registry(real.family, name, base=real.base, fix=real.fix))
    assert check()
