"""The broadcast composer: write a campaign, see who it reaches, send it, watch its funnel.

``BroadcastComposer(ws, account=...)`` walks a marketer through a broadcast: account and
category; the message written (placeholder buttons, checked as you type: an unknown
placeholder is named with its position) or picked from the saved templates; A/B variants
and a hold-out control group; the audience (``AudiencePicker``) with a live count and the
exclusions by reason; the exact text for three sample recipients; the plan (expected
deliveries, reads, replies, cost from the rate card); send now or at a time, after a
confirmation that repeats the counts and the cost; the send through the configured
transport with a progress bar and a cancel button; then the broadcast's funnel.

Every number comes from a Workspace call (``ws.broadcasts.estimate``, ``create``,
``schedule``, ``send``, ``cancel``, ``funnel``): the composer holds no rule, so it can
never send past ``consent.may_send``, and nothing is stored until the marketer confirms.
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as w
import pandas as pd

from ..errors import BizchatError, InvalidValue, TemplateError
from .audience_picker import AudiencePicker
from .base import Workbench, button, resolve_account
from .confirm import Confirm
from .feedback import error_sentence
from .paging import html_table
from .progress import ProgressBar

REASONS = {"no_consent": "no consent", "opted_out": "opted out",
           "frequency_cap": "frequency cap", "quiet_hours": "quiet hours",
           "invalid_number": "invalid number", "missing_placeholder": "missing placeholder"}
MAX_VARIANTS = 4
TYPING_PAUSE = 0.35   # seconds without a keystroke before the text is checked and counted


def _pct(x) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.1f} %"


def _count_sentence(counts: dict) -> str:
    """'3,219 of 4,955 matching contacts get it (A 1,610, B 1,609); 358 held out'."""
    parts = [f"<b>{counts['queued']:,}</b> of {counts['candidates']:,} matching contacts "
             "would get it"]
    if len(counts["by_variant"]) > 1:
        parts.append(" (" + ", ".join(f"{html.escape(k)} {v:,}"
                                      for k, v in counts["by_variant"].items()) + ")")
    control = counts["skipped"].get("control", 0)
    if control:
        parts.append(f"; {control:,} held out as the control group")
    if counts.get("not_sampled"):
        parts.append(f"; {counts['not_sampled']:,} not drawn in the sample")
    return "".join(parts) + "."


class _Sink:
    """The outbox's progress hook (tqdm's update/close, plus reset with the total)."""

    def __init__(self, bar: ProgressBar):
        self.bar, self.done = bar, 0

    def reset(self, total: int) -> None:
        self.done = 0
        self.bar.start(total, "Sending")

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        self.bar.update(self.done)

    def close(self) -> None:
        pass


class BroadcastComposer(Workbench):
    """Compose, check, plan, send and follow one broadcast of an account.

    ``transport``: what ``ws.broadcasts.send`` sends through (default the simulated one;
    ``"cloud"`` for the WhatsApp Cloud API). ``background``: send in a thread so the
    cancel button works while the kernel sends (tests pass False or call ``wait()``).
    ``actor``: who the audit log names for what the composer stores (``web`` in the app).
    """

    def __init__(self, ws, account=None, *, transport=None, seed: int | None = None,
                 background: bool = True, actor: str = "notebook", **kwargs):
        super().__init__(ws, **kwargs)
        self.transport, self.seed, self.background, self.actor = transport, seed, background, actor
        self.estimate = None          # the latest ws.broadcasts.estimate result
        self.broadcast_id: int | None = None
        self.result: dict | None = None
        self._thread: threading.Thread | None = None
        self._loading = False
        self._text_checks: dict[tuple, list[str]] = {}
        self._cancelled = False
        self._cancel_note = ""
        self._typing: threading.Timer | None = None
        self._build()
        accounts = ws.accounts.list()
        self.account.options = [(f"{r.display_name or ''} {r.phone_e164}".strip(),
                                 int(r.account_id)) for r in accounts.itertuples()]
        try:
            chosen = resolve_account(ws, account)
        except BizchatError as exc:
            self.status.error(exc)
            return
        self.account.value = int(chosen["account_id"])   # loads the options, counts

    # -- layout ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.account = w.Dropdown(description="Account", options=[])
        self.category = w.ToggleButtons(options=["marketing", "utility"], value="marketing",
                                        description="Category")
        self.name = w.Text(description="Name", placeholder="e.g. Herbstlese 2026",
                           layout=w.Layout(width="420px"))
        self.source = w.ToggleButtons(options=[("Write a text", "write"),
                                               ("Saved template", "template")], value="write")
        self.template = w.Dropdown(description="Template", options=[],
                                   layout=w.Layout(width="520px", display="none"))
        self.body = w.Textarea(placeholder="Hallo {first_name}, …", rows=4,
                               layout=w.Layout(width="640px"))
        self.placeholder_buttons = w.HBox([])
        self.check = w.HTML()
        self.variant_boxes: list[w.Textarea] = []
        self.variants = w.VBox([])
        self.add_variant = button("Add variant", icon="plus")
        self.control = w.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.05,
                                     description="Control group", readout_format=".0%",
                                     style={"description_width": "initial"})
        self.audience = AudiencePicker()
        self.count = w.HTML()
        self.exclusions = w.HTML()
        self.previews = w.HTML()
        self.plan_button = button("Plan", icon="calculator")
        self.plan = w.HTML()
        self.when = w.ToggleButtons(options=[("Send now", "now"), ("At a time", "at")],
                                    value="now")
        self.at = w.Text(placeholder="2026-12-08T10:00+01:00", description="Send at",
                         layout=w.Layout(display="none"))
        self.review = button("Review and send…", style="primary", icon="paper-plane")
        self.confirm = Confirm()
        self.progress = ProgressBar()
        self.cancel = button("Cancel sending", style="danger", icon="stop")
        self.cancel.layout.display = "none"
        self.funnel = w.HTML()
        section = lambda text: w.HTML(f"<h4 style='margin:10px 0 2px'>{text}</h4>")  # noqa: E731
        self.children = [
            w.HBox([self.account, self.category]), self.name,
            section("Message"), self.source, self.template, self.body,
            self.placeholder_buttons, self.check,
            section("A/B variants and control group"), self.variants,
            w.HBox([self.add_variant, self.control]),
            section("Audience"), self.audience, self.count, self.exclusions,
            section("Preview for three recipients"), self.previews,
            section("Plan"), self.plan_button, self.plan,
            section("Send"), w.HBox([self.when, self.at]), self.review, self.confirm,
            w.HBox([self.progress, self.cancel]), self.funnel, self.status,
        ]
        # Stable hooks for the browser tests and for styling (Voilà pages).
        for control, name in ((self.name, "name"), (self.body, "body"), (self.count, "count"),
                              (self.exclusions, "exclusions"), (self.review, "review"),
                              (self.funnel, "funnel"), (self.audience.labels_any, "labels-any"),
                              (self.check, "check")):
            control.add_class(f"bizchat-composer-{name}")
        self.account.observe(lambda _: self._load_account(), names="value")
        for control in (self.category, self.template, self.control):
            control.observe(lambda _: self.refresh(), names="value")
        self.source.observe(self._source_picked, names="value")
        self.body.observe(lambda _: self._typed(), names="value")
        self.audience.on_change(self.refresh)
        self.add_variant.on_click(lambda _: self._add_variant())
        self.plan_button.on_click(lambda _: self.show_plan())
        self.when.observe(self._when_picked, names="value")
        self.review.on_click(lambda _: self.ask_to_send())
        self.cancel.on_click(lambda _: self.cancel_sending())

    def controls(self):
        """Everything but the cancel button is disabled while an action runs."""
        return [c for c in super().controls() if c is not self.cancel]

    # -- account and options -------------------------------------------------------------------

    def _load_account(self) -> None:
        options = self.act(lambda: self.ws.broadcasts.composer_options(self.account.value),
                           busy="Loading the account…")
        if options is None:
            return
        self._loading = True
        self._text_checks.clear()   # the account's placeholders may have changed
        try:
            self.options = options
            self.audience.set_options(options)
            saved = options["templates"]
            self.template.options = [(f"{r.name} ({r.language}, {r.category})", int(r.template_id))
                                     for r in saved.itertuples()]
            buttons = []
            for name in options["placeholders"]:
                b = w.Button(description="{" + name + "}", tooltip=f"Add {{{name}}} to the text",
                             layout=w.Layout(width="auto"))
                b.on_click(lambda _, n=name: self.insert_placeholder(n))
                buttons.append(b)
            self.placeholder_buttons.children = buttons
        finally:
            self._loading = False
        self.refresh()

    def insert_placeholder(self, name: str) -> None:
        """Add ``{name}`` at the end of the text (a browser textarea keeps no caret here)."""
        text = self.body.value
        self.body.value = text + ("" if not text or text.endswith(" ") else " ") + "{" + name + "}"

    def _source_picked(self, change) -> None:
        writing = change["new"] == "write"
        self.body.layout.display = "flex" if writing else "none"
        self.placeholder_buttons.layout.display = "flex" if writing else "none"
        self.template.layout.display = "none" if writing else "flex"
        self.refresh()

    def _add_variant(self) -> None:
        if len(self.variant_boxes) >= MAX_VARIANTS - 1:
            self.status.error(f"At most {MAX_VARIANTS} variants here (A to "
                              f"{chr(ord('A') + MAX_VARIANTS - 1)}).")
            return
        letter = chr(ord("B") + len(self.variant_boxes))
        box = w.Textarea(description=f"Variant {letter}", rows=3, layout=w.Layout(width="640px"),
                         placeholder="Another wording of the message")
        box.observe(lambda _: self._typed(), names="value")
        self.variant_boxes.append(box)
        self.variants.children = list(self.variant_boxes)

    def _typed(self) -> None:
        """Text changes arrive per keystroke: in the background mode (a browser) the check
        and the recount wait until typing pauses (``TYPING_PAUSE``), so keystrokes do not
        queue up behind counts; headless (tests, scripts) they run at once."""
        if not self.background:
            self.refresh()
            return
        if self._typing is not None:
            self._typing.cancel()
        self._typing = threading.Timer(TYPING_PAUSE, self.refresh)
        self._typing.daemon = True
        self._typing.start()

    def _when_picked(self, change) -> None:
        self.at.layout.display = "flex" if change["new"] == "at" else "none"

    # -- the definition --------------------------------------------------------------------------

    def message(self) -> dict:
        """The message fields of ``ws.broadcasts.create`` / ``estimate``."""
        fields: dict = {}
        if self.source.value == "template":
            fields["template"] = self.template.value
        else:
            fields["body"] = self.body.value
        variants = [b.value for b in self.variant_boxes if b.value.strip()]
        if variants:
            fields["variants"] = variants
        return fields

    def definition(self) -> dict:
        return dict(category=self.category.value, audience=self.audience.audience(),
                    control=float(self.control.value), **self.message())

    def _check_texts(self) -> bool:
        """Check the written texts as the user types; the first problem, as one sentence."""
        if self.source.value == "template":
            ok = self.template.value is not None
            self.check.value = "" if ok else "<i>Pick a saved template.</i>"
            return ok
        if not self.body.value.strip():
            self.check.value = ("<i>Write the message; the buttons add placeholders. "
                                "The audience is counted meanwhile.</i>")
            return False
        texts = [("The message", self.body.value)] + [
            (f"Variant {chr(ord('B') + i)}", b.value) for i, b in enumerate(self.variant_boxes)
            if b.value.strip()]
        names: list[str] = []
        for what, text in texts:
            try:
                names += self._checked(text)
            except (TemplateError, InvalidValue) as exc:   # about the text: under it
                self.check.value = (f"<span style='color:#b3261e' data-kind='error'>⚠ "
                                    f"{html.escape(what)}: {html.escape(error_sentence(exc))}"
                                    "</span>")
                return False
            except Exception as exc:   # noqa: BLE001 - a busy workspace ...: the status line
                self.check.value = ""
                self.status.error(exc)
                return False
        shown = ", ".join("{" + n + "}" for n in dict.fromkeys(names)) or "none"
        self.check.value = (f"<span style='color:#1b7f3b' data-kind='ok'>✓ Placeholders: "
                            f"{html.escape(shown)}</span>")
        return True

    def _checked(self, text: str) -> list[str]:
        """``ws.broadcasts.check_text``, remembered per account and text: an audience
        change does not check the unchanged text again (a connection each time)."""
        key = (self.account.value, text)
        if key not in self._text_checks:
            if len(self._text_checks) > 64:   # only the latest texts matter
                self._text_checks.clear()
            self._text_checks[key] = self.ws.broadcasts.check_text(self.account.value, text)
        return self._text_checks[key]

    # -- live count and previews -------------------------------------------------------------------

    def refresh(self) -> None:
        """Recount the audience and its exclusions and render the previews (one
        ``ws.broadcasts.estimate`` call)."""
        if self._loading or self.account.value is None:
            return
        self.plan.value = ""   # a plan belongs to the definition it was made for
        blank = self.source.value == "write" and not self.body.value.strip()
        if not self._check_texts() and not blank:
            self.count.value = self.exclusions.value = self.previews.value = ""
            self.estimate = None
            return
        definition = self.definition()
        if blank:   # no text yet: count the audience with a text that needs no values
            definition.update(body="…", variants=None)
        estimate = self.act(lambda: self.ws.broadcasts.estimate(self.account.value,
                                                                **definition),
                            busy="Counting…")
        self.estimate = estimate
        if estimate is None:
            self.count.value = self.exclusions.value = self.previews.value = ""
            return
        counts = estimate.counts
        self.count.value = _count_sentence(counts)
        excluded = estimate.excluded
        self.exclusions.value = ("Excluded: " + ", ".join(
            f"{REASONS.get(k, k)} {v:,}" for k, v in sorted(excluded.items(),
                                                          key=lambda kv: -kv[1]))
            if excluded else "Nobody excluded.")
        if blank:
            self.previews.value = "<i>Write the message to see what three recipients get.</i>"
        elif estimate.samples:
            rows = pd.DataFrame(estimate.samples)
            rows["name"] = rows["name"].fillna("(no name)")
            self.previews.value = html_table(rows, {"name": "Recipient", "variant": "Variant",
                                                    "text": "Exact text"})
        else:
            self.previews.value = "<i>Nobody in this audience would get it.</i>"

    def show_plan(self) -> None:
        """Expected deliveries, reads, replies and the cost from the rate card."""
        if not self._check_texts():
            return
        estimate = self.act(lambda: self.ws.broadcasts.estimate(
            self.account.value, plan=True, at=self._send_time(), **self.definition()),
            busy="Planning…")
        if estimate is None:
            return
        self.estimate = estimate
        self.plan.value = "<br>".join(html.escape(line) for line in estimate.plan.lines()[1:])

    # -- sending -------------------------------------------------------------------------------------

    def _send_time(self):
        if self.when.value == "now":
            return None
        text = self.at.value.strip()
        if not text:
            raise BizchatError("Give the send time, e.g. 2026-12-08T10:00+01:00.")
        return text

    def ask_to_send(self) -> None:
        """The confirmation: the counts and the cost, again, before anything is stored."""
        if self._typing is not None:   # checked and counted right here
            self._typing.cancel()
        if not self.name.value.strip():
            self.status.error("Give the broadcast a name first (it is how you find it later).")
            return
        if not self._check_texts():
            self.status.error("Fix the message first (see the line under it).")
            return
        estimate = self.act(lambda: self.ws.broadcasts.estimate(
            self.account.value, plan=True, at=self._send_time(), **self.definition()),
            busy="Checking the audience…")
        if estimate is None:
            return
        self.estimate = estimate
        counts, cost = estimate.counts, estimate.plan.cost
        if counts["queued"] == 0:
            self.status.error("Nobody in this audience may be sent this broadcast; change the "
                              "audience.")
            return
        when = "now" if self.when.value == "now" else f"at {self.at.value.strip()}"
        split = (" (" + ", ".join(f"{k} {v:,}" for k, v in counts["by_variant"].items()) + ")"
                 if len(counts["by_variant"]) > 1 else "")
        held = counts["skipped"].get("control", 0)
        excluded = sum(estimate.excluded.values())
        question = (f"Send '{self.name.value.strip()}' {when} to {counts['queued']:,} recipients"
                    f"{split}{f', {held:,} held out as control' if held else ''}"
                    f"{f', {excluded:,} excluded' if excluded else ''}? Expected cost "
                    f"{cost['total']:.2f} {cost['currency']}.")
        self.confirm.ask(question, self._go, yes="Send" if self.when.value == "now" else "Schedule")

    def _go(self) -> None:
        fields = self.definition()
        created = self.act(lambda: self.ws.broadcasts.create(
            self.account.value, self.name.value.strip(), seed=self.seed, actor=self.actor,
            **fields), busy="Saving the broadcast…")
        if created is None:
            return
        self.broadcast_id = int(created["broadcast_id"])
        if self.when.value == "at":
            done = self.act(lambda: self.ws.broadcasts.schedule(self.broadcast_id,
                                                                at=self._send_time(),
                                                                actor=self.actor),
                            busy="Scheduling…")
            if done is not None:
                self.status.ok(f"Broadcast {self.broadcast_id} is scheduled for "
                               f"{done['scheduled_for']:%Y-%m-%d %H:%M} UTC with "
                               f"{done['queued']:,} recipients.")
            return
        self.cancel.layout.display = "flex"
        self.review.disabled = True
        if self.background:
            self._thread = threading.Thread(target=self._run_send, daemon=True)
            self._thread.start()
        else:
            self._run_send()

    def _run_send(self) -> None:
        sink = _Sink(self.progress)
        bid = self.broadcast_id
        assert bid is not None   # set by _go before the send starts
        self._cancelled = False
        self.status.busy(f"Sending broadcast {bid}…")
        try:
            result = self.ws.broadcasts.send(bid, transport=self.transport, seed=self.seed,
                                             progress=sink, actor=self.actor)
        except Exception as exc:   # noqa: BLE001 - shown as one sentence (below)
            result, failure = None, exc
        finally:
            self.cancel.layout.display = "none"
            self.review.disabled = False
        if result is None:
            # A cancel that met the sender mid-transaction makes the sender's write fail
            # (DuckDB: a conflict); the broadcast is cancelled and nothing was lost.
            if self._cancelled and self._status_of(bid) == "cancelled":
                self.progress.finish("Cancelled")
                self.show_funnel()
                self.status.ok(f"Broadcast {bid} was cancelled: {self._cancel_note}")
            else:
                self.status.error(failure)
            return
        self.result = result
        self.progress.finish(f"{result.get('sent', 0):,} sent, {result.get('failed', 0):,} "
                             f"failed, {result.get('skipped', 0):,} skipped")
        self.show_funnel()
        if result.get("status") == "cancelled":
            self.status.ok(f"Broadcast {bid} was cancelled: {self._cancel_note} "
                           f"{self.progress.label.value}.")
        else:
            self.status.ok(f"Broadcast {bid} is {result.get('status', 'sent')}: "
                           f"{self.progress.label.value}.")

    def _status_of(self, bid: int) -> str | None:
        try:
            return self.ws.broadcasts.get(bid)["status"]
        except Exception:   # noqa: BLE001 - only used to word the outcome
            return None

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a send started in the background (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def cancel_sending(self) -> None:
        """Stop the send: recipients still queued become skipped (cancelled). Retried a
        few times when it meets the sender's write (both work on the same rows)."""
        if self.broadcast_id is None:
            return
        self._cancelled = True
        failure: BaseException | None = None
        for _ in range(20):
            try:
                done = self.ws.broadcasts.cancel(self.broadcast_id, actor=self.actor)
                break
            except BizchatError as exc:   # e.g. already done: nothing to cancel
                self.status.error(exc)
                return
            except Exception as exc:   # noqa: BLE001 - a write conflict: try again
                failure = exc
                time.sleep(0.1)
        else:
            self.status.error(failure or "The broadcast could not be cancelled.")
            return
        self._cancel_note = ("nothing was sent." if done["previous_status"] == "draft" else
                             f"{done['cancelled']:,} recipients not yet sent were skipped.")
        self.status.ok(f"Cancelled: {self._cancel_note}")

    def show_funnel(self) -> None:
        """The broadcast's funnel so far: sent, delivered, read, replied, with the rates."""
        if self.broadcast_id is None:
            return
        found = self.act(lambda: self.ws.broadcasts.funnel(self.broadcast_id))
        if found is None:
            return
        rows = pd.DataFrame([
            ("Sent", found["sent"], ""),
            ("Delivered", found["delivered"], _pct(found.get("delivery_rate"))),
            ("Read", found["read"], _pct(found.get("open_rate")) + " (a lower bound)"),
            ("Replied (72 h)", found["replied"], _pct(found.get("reply_rate"))),
            ("Failed", found["failed"], ""),
        ], columns=["stage", "count", "rate"])
        rows["count"] = rows["count"].map(lambda n: f"{int(n):,}")
        self.funnel.value = (f"<h4>Funnel of broadcast {self.broadcast_id}</h4>"
                             + html_table(rows, {"stage": "Stage", "count": "Recipients",
                                                 "rate": "Rate"}))


__all__ = ["BroadcastComposer"]
