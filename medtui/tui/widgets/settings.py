"""The settings half of the new-experiment form: one compact row per run-config field.

:class:`SettingsForm` shows a :class:`~medtui.config.RunConfig`'s editable fields and
reads them back as config values; blank optional fields mean "automatic" (None).
The chosen method's options get a row each, drawn from its options dataclass
(:func:`medtui.methods.option_fields`); a blank option means its default.
Checking the values is the screen's job, with the same function the CLI uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Input, Label, Select

from medtui.config import AMP_MODES, JOINT_SAMPLING, TUNE_MODES, RunConfig
from medtui.errors import ConfigError
from medtui.methods import method_names, option_fields, parse_value
from medtui.protocols import protocol_names


@dataclass(frozen=True)
class Field:
    """One form row: the config field it edits, how its text is parsed, and the help shown on focus."""

    key: str
    label: str
    kind: str  # text | opttext | int | optint | float | optfloat | choice
    hint: str
    placeholder: str = ""


FIELDS: tuple[Field, ...] = (
    Field("name", "name", "opttext", "Run name; blank = automatic (paradigm, method, buffer, sequence).", "auto"),
    Field("paradigm", "paradigm", "choice", "specialized: a model per task · joint: all at once · continual: in order."),
    Field("method", "method", "choice", "How continual stages train (its options below; `medtui methods` explains each)."),
    Field("buffer_size", "buffer", "int", "Replay buffer in samples, continual only, any method (0 = none)."),
    Field("joint_sampling", "sampling", "choice", "Joint batches: balanced = each task an equal share · proportional = by size."),
    Field("model", "model", "text", "open_clip architecture, hf-hub:ORG/REPO or local-dir:PATH (→ completes).", "medtui-tiny"),
    Field("pretrained", "weights", "opttext", "Pretrained tag (openai…), a checkpoint path, or blank = random.", "none"),
    Field("tune", "tune", "choice", "full: both towers · vision: image tower · head: linear heads only · lora: low-rank adapters."),
    Field("epochs", "epochs", "int", "Epochs per stage."),
    Field("batch_size", "batch size", "int", "Training batch size."),
    Field("lr", "learn rate", "optfloat", "Learning rate; blank = auto (1e-3 from scratch, 1e-5 pretrained).", "auto"),
    Field("text_lr_scale", "text lr ×", "float", "Text tower's rate as a multiple of the learning rate (full, lora); 1 = the same."),
    Field("seed", "seed", "int", "Random seed (subsampling, initialisation, shuffling)."),
    Field("device", "device", "text", "auto, cpu, cuda or cuda:i (→ completes).", "auto"),
    Field("amp", "precision", "choice", "auto: bf16 on CUDA, full on the CPU · bf16: also on a CPU with bf16 instructions · fp16: CUDA · off."),
    Field("max_train", "max train", "optint", "Cap each task's train split (class-stratified); blank = all.", "all"),
    Field("max_test", "max test", "optint", "Cap each task's test split (class-stratified); blank = all.", "all"),
    Field("shots", "shots", "int", "Few-shot: K labelled training samples per class per task (seeded; 0 = all)."),
)
FIELD_BY_KEY: dict[str, Field] = {f.key: f for f in FIELDS}
CHOICES: dict[str, tuple[str, ...]] = {
    "paradigm": protocol_names(), "method": method_names(), "tune": TUNE_MODES, "joint_sampling": JOINT_SAMPLING,
    "amp": AMP_MODES,
}
#: Completions offered while typing (open_clip's tag list needs torch to import, so a few common ones).
PRETRAINED_TAGS: tuple[str, ...] = ("none", "openai", "laion2b_s34b_b79k", "laion400m_e32", "datacomp_xl_s13b_b90k")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "mps")


def parse_field(field: Field, raw: str) -> object:
    """The config value of a field's text; ConfigError naming the field when it is not a number."""
    text = raw.strip()
    if field.kind == "text":
        return text
    if not text:
        if field.kind.startswith("opt"):
            return None
        raise ConfigError(f"{field.label} is empty")
    if field.kind in ("int", "optint", "float", "optfloat"):
        number = float if field.kind in ("float", "optfloat") else int
        try:
            return number(text)
        except ValueError:
            raise ConfigError(f"{field.label}: {text!r} is not a {'whole ' if number is int else ''}number") from None
    return text


def field_text(value: object) -> str:
    """What a field shows for a config value (blank for None; floats round-trip exactly)."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def known_choices(config: RunConfig) -> RunConfig:
    """``config`` with unknown choice values reset to the defaults (a Select cannot show another value)."""
    from dataclasses import replace

    fixed: dict[str, object] = {k: getattr(RunConfig, k) for k, choices in CHOICES.items() if getattr(config, k) not in choices}
    if "method" in fixed:
        fixed["method_opts"] = {}
    return replace(config, **fixed) if fixed else config


def option_rows(method: str, values: dict[str, object]) -> list[Horizontal]:
    """A row per option of ``method``: its name and an Input (id ``o-<option>``) showing ``values`` or the default."""
    rows = []
    for opt in option_fields(method):
        value = values.get(opt["name"], opt["default"])
        text = str(value).lower() if isinstance(value, bool) else field_text(value)
        inp = Input(text, placeholder=field_text(opt["default"]), compact=True, id=f"o-{opt['name']}")
        inp.tooltip = opt["help"]
        rows.append(Horizontal(Label(f"· {opt['name']}", classes="field-label"), inp, classes="field method-opt"))
    return rows


class SettingsForm(VerticalScroll):
    """A label and a compact Input or Select per :data:`FIELDS` entry; widget ids are ``f-<field>``."""

    def __init__(self, config: RunConfig, *, id: str | None = None) -> None:
        super().__init__(id=id, can_focus=False)  # the fields take focus, not the scroll box
        self.initial = known_choices(config)

    def _widget(self, field: Field) -> Widget:
        from medtui.models.catalog import HUB_MODELS, architectures, tiny_models

        wid, value = f"f-{field.key}", getattr(self.initial, field.key)
        if field.kind == "choice":
            return Select([(c, c) for c in CHOICES[field.key]], value=value, allow_blank=False, compact=True, id=wid)
        suggest = {
            "model": (*tiny_models(), *HUB_MODELS, *architectures()),
            "pretrained": PRETRAINED_TAGS,
            "device": DEVICES,
        }.get(field.key)
        kind = {"int": "integer", "optint": "integer", "float": "number", "optfloat": "number"}.get(field.kind, "text")
        return Input(
            field_text(value), placeholder=field.placeholder, type=kind, compact=True, id=wid,
            suggester=SuggestFromList(suggest, case_sensitive=False) if suggest else None,
        )

    def compose(self) -> ComposeResult:
        """One row per field; the method's options right below the method."""
        for field in FIELDS:
            with Horizontal(classes="field", id=f"row-{field.key}"):
                yield Label(field.label, classes="field-label")
                yield self._widget(field)
            if field.key == "method":
                yield Vertical(*option_rows(self.initial.method, dict(self.initial.method_opts)), id="method-opts")

    async def _show_options(self, method: str, values: dict[str, object]) -> None:
        box = self.query_one("#method-opts", Vertical)
        await box.remove_children()
        await box.mount_all(option_rows(method, values))

    @on(Select.Changed, "#f-method")
    async def _method_changed(self, event: Select.Changed) -> None:
        if self.query("#method-opts Input") and self._shown_method == event.value:
            return
        self._shown_method = str(event.value)
        await self._show_options(str(event.value), {})

    def on_mount(self) -> None:
        """Remember whose options are shown."""
        self._shown_method = self.initial.method

    def method_opts(self) -> dict[str, object]:
        """The option fields' values (blank = default), read as TOML scalars."""
        out: dict[str, object] = {}
        for inp in self.query("#method-opts Input").results(Input):
            if inp.value.strip():
                out[(inp.id or "").removeprefix("o-")] = parse_value(inp.value.strip())
        return out

    def values(self) -> dict[str, object]:
        """Every field's config value; ConfigError for text that is not a number."""
        out: dict[str, object] = {}
        for field in FIELDS:
            if field.kind == "choice":
                out[field.key] = self.query_one(f"#f-{field.key}", Select).value
            else:
                out[field.key] = parse_field(field, self.query_one(f"#f-{field.key}", Input).value)
        out["method_opts"] = self.method_opts() if out.get("method") == self._shown_method else {}
        return out

    async def show(self, config: RunConfig) -> None:
        """Put ``config``'s values in the fields (and its method's options)."""
        config = known_choices(config)
        self._shown_method = config.method
        await self._show_options(config.method, dict(config.method_opts))
        for field in FIELDS:
            value = getattr(config, field.key)
            if field.kind == "choice":
                self.query_one(f"#f-{field.key}", Select).value = value
            else:
                self.query_one(f"#f-{field.key}", Input).value = field_text(value)

    @staticmethod
    def hint(widget_id: str | None) -> str | None:
        """The help line of the field whose widget is ``widget_id`` (None for other widgets)."""
        wid = widget_id or ""
        if wid.startswith("o-"):
            return "A method option (blank = its default; `medtui methods` lists them)."
        field = FIELD_BY_KEY.get(wid.removeprefix("f-"))
        return field.hint if field is not None and wid.startswith("f-") else None
