"""The audience picker: who a broadcast is for, as the composer's controls.

Labels (any of, all of, none of), language, one contact attribute, last activity and
behaviour in a past broadcast. ``audience()`` returns the definition as
``Broadcasts.create`` and ``estimate`` take it (``audiences.Audience`` keys); the picker
holds no rule of its own and calls no service: the composer counts.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

ANY = "(any)"
ACTIVITY = (("any time", ""), ("wrote within … days", "active_within_days"),
            ("silent for … days or never wrote", "inactive_for_days"))
PAST = (("—", ""), ("received broadcast", "received"), ("read broadcast", "read"),
        ("did not read broadcast", "not_read"))


def _multi(description: str) -> w.SelectMultiple:
    return w.SelectMultiple(options=[], rows=5, description=description,
                            layout=w.Layout(width="220px"),
                            style={"description_width": "initial"})


class AudiencePicker(w.VBox):
    """Controls for an ``Audience``; ``on_change(callback)`` runs after every change."""

    def __init__(self, **kwargs):
        self.labels_any = _multi("Labels: any of")
        self.labels_all = _multi("all of")
        self.labels_none = _multi("none of")
        self.language = _multi("Language")
        self.attribute = w.Dropdown(options=[ANY], description="Attribute",
                                    layout=w.Layout(width="240px"))
        self.attribute_value = w.Dropdown(options=[], description="=",
                                          layout=w.Layout(width="200px", display="none"),
                                          style={"description_width": "12px"})
        self.activity = w.Dropdown(options=list(ACTIVITY), value="", description="Last activity",
                                   style={"description_width": "initial"},
                                   layout=w.Layout(width="330px"))
        self.days = w.BoundedIntText(value=30, min=0, max=3650, description="days",
                                     layout=w.Layout(width="130px", display="none"),
                                     style={"description_width": "initial"})
        self.past = w.Dropdown(options=list(PAST), value="", description="Past campaign",
                               style={"description_width": "initial"},
                               layout=w.Layout(width="330px"))
        self.past_broadcast = w.Dropdown(options=[], layout=w.Layout(width="300px",
                                                                     display="none"))
        self._attribute_values: dict[str, list[str]] = {}
        self._callbacks: list[Callable[[], object]] = []
        self._quiet = False
        super().__init__([
            w.HBox([self.labels_any, self.labels_all, self.labels_none, self.language]),
            w.HBox([self.attribute, self.attribute_value]),
            w.HBox([self.activity, self.days]),
            w.HBox([self.past, self.past_broadcast]),
        ], **kwargs)
        for control in (self.labels_any, self.labels_all, self.labels_none, self.language,
                        self.attribute_value, self.days, self.past_broadcast):
            control.observe(self._changed, names="value")
        self.attribute.observe(self._attribute_picked, names="value")
        self.activity.observe(self._activity_picked, names="value")
        self.past.observe(self._past_picked, names="value")

    # -- options from the composer (Broadcasts.composer_options) -----------------------------

    def set_options(self, options: dict) -> None:
        """Fill the choices for an account; the current choices are reset."""
        self._quiet = True
        try:
            for control in (self.labels_any, self.labels_all, self.labels_none):
                control.value = ()
                control.options = list(options["labels"])
            self.language.value = ()
            self.language.options = list(options["languages"])
            self._attribute_values = dict(options["attributes"])
            self.attribute.value = ANY
            self.attribute.options = [ANY, *self._attribute_values]
            past = options["broadcasts"]
            self.past.value = ""
            self.past_broadcast.options = [(f"{int(r.broadcast_id)} · {r.name}",
                                            int(r.broadcast_id)) for r in past.itertuples()]
            self.activity.value = ""
        finally:
            self._quiet = False

    def on_change(self, callback: Callable[[], object]) -> None:
        self._callbacks.append(callback)

    # -- the definition ----------------------------------------------------------------------

    def audience(self) -> dict:
        """The chosen conditions as an audience dict (empty: every contact)."""
        out: dict = {}
        for key in ("labels_any", "labels_all", "labels_none", "language"):
            chosen = list(getattr(self, key).value)
            if chosen:
                out[key] = chosen
        if self.attribute.value != ANY and self.attribute_value.value is not None:
            out["attributes"] = {self.attribute.value: self.attribute_value.value}
        if self.activity.value:
            out[self.activity.value] = int(self.days.value)
        if self.past.value and self.past_broadcast.value is not None:
            out[self.past.value] = [int(self.past_broadcast.value)]
        return out

    # -- reactions -----------------------------------------------------------------------------

    def _changed(self, _change=None) -> None:
        if self._quiet:
            return
        for callback in self._callbacks:
            callback()

    def _attribute_picked(self, change) -> None:
        name = change["new"]
        self._quiet = True
        try:
            values = self._attribute_values.get(name, [])
            self.attribute_value.options = values
            self.attribute_value.value = values[0] if values else None
            self.attribute_value.layout.display = "none" if name == ANY else "flex"
        finally:
            self._quiet = False
        self._changed()

    def _activity_picked(self, change) -> None:
        self.days.layout.display = "flex" if change["new"] else "none"
        self._changed()

    def _past_picked(self, change) -> None:
        self.past_broadcast.layout.display = "flex" if change["new"] else "none"
        self._changed()


__all__ = ["AudiencePicker"]
