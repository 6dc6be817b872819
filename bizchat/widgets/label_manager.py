"""The label manager: an account's labels, a contact finder, bulk labelling, contact cards.

``LabelManager(ws, account=...)`` shows the labels with their colour, name and counts;
creates, renames, recolours, merges and deletes them (merge and delete ask first and say
how many contacts they touch). The finder searches by name or number in any written form
and by labels (any / all / none), one page at a time; a label is assigned to or removed
from the selected contacts or every contact the filter finds, in one service call. The
contact card edits name, language, time zone and attributes, shows the consent history
and records an opt-in or opt-out with its source and evidence. Every action is one
Workspace method (``ws.labels``, ``ws.contacts``, ``ws.consent``); counts are read again
after each change.
"""

from __future__ import annotations

import html
import json

import ipywidgets as w
import pandas as pd

from ..people.labels import PALETTE
from .base import Workbench, button
from .confirm import Confirm
from .paging import Pager, html_table, plain

SCOPES = [("selected contacts", "selected"), ("every contact found", "filter")]


def swatch(hex_colour: object) -> str:
    return (f"<span style='display:inline-block;width:12px;height:12px;border-radius:6px;"
            f"background:{html.escape(str(hex_colour))};vertical-align:middle'></span>")


def _contact_line(row: dict) -> str:
    name = plain(row.get("name")) or "(no name)"
    labels = plain(row.get("labels"))
    consent = {"opt_in": "✓ marketing", "opt_out": "✗ opted out"}.get(plain(row.get("marketing")), "")
    return "  ·  ".join(x for x in (name, plain(row.get("phone_e164")), labels, consent) if x)


def _when(value: object) -> str:
    return html.escape(f"{pd.Timestamp(value):%Y-%m-%d %H:%M} UTC") if value is not None else ""


class LabelManager(Workbench):
    """Labels, contact finder, bulk labelling and the contact card of one account."""

    def __init__(self, ws, account=None, *, page_size: int = 50, actor: str = "notebook"):
        super().__init__(ws, actor=actor)
        found = self.open_account(account)
        if found is None:
            return
        self.account = found
        self.account_ref = found["account_id"]
        self.labels = pd.DataFrame()
        self.page_rows = pd.DataFrame()
        self.total = 0
        self.contact: dict | None = None

        # labels
        self.labels_table = w.HTML()
        self.label_pick = w.Dropdown(description="Label", options=[])
        self.name_box = w.Text(description="Name", placeholder="new label name")
        self.color_pick = w.Dropdown(
            description="Colour", options=[("automatic", 0)] + [
                (f"{n}  {hexcode}", n) for n, hexcode in enumerate(PALETTE, 1)])
        self.create_btn = button("Create label", style="primary", icon="plus")
        self.rename_btn = button("Rename", icon="pencil")
        self.recolor_btn = button("Recolour", icon="paint-brush")
        self.merge_into = w.Dropdown(description="Merge into", options=[])
        self.merge_btn = button("Merge", icon="compress")
        self.delete_btn = button("Delete label", style="danger", icon="trash")
        self.refresh_btn = button("Refresh", icon="refresh")
        self.confirm = Confirm()

        # finder
        self.search = w.Text(description="Search", placeholder="name or number",
                             continuous_update=False)
        self.any_of = w.SelectMultiple(description="Any of", options=[], rows=4)
        self.all_of = w.SelectMultiple(description="All of", options=[], rows=4)
        self.none_of = w.SelectMultiple(description="None of", options=[], rows=4)
        self.find_btn = button("Find", icon="search")
        self.found = w.HTML()
        self.results = w.SelectMultiple(options=[], rows=12,
                                        layout=w.Layout(width="100%"))
        self.pager = Pager(page_size)
        self.bulk_label = w.Dropdown(description="Label", options=[])
        self.scope = w.ToggleButtons(options=SCOPES, value="selected")
        self.assign_btn = button("Assign", style="success", icon="tag")
        self.unassign_btn = button("Remove", icon="times")

        # contact card
        self.card_title = w.HTML()
        self.card_name = w.Text(description="Name")
        self.card_language = w.Text(description="Language", placeholder="de, de-AT, en …")
        self.card_timezone = w.Text(description="Time zone", placeholder="Europe/Berlin")
        self.card_attributes = w.Textarea(description="Attributes",
                                          placeholder='{"city": "Graz"}')
        self.save_btn = button("Save contact", style="primary", icon="save")
        self.consent_history = w.HTML()
        self.consent_action = w.ToggleButtons(options=[("opt-in", "opt_in"),
                                                       ("opt-out", "opt_out")], value="opt_in")
        self.consent_purpose = w.Dropdown(description="Purpose",
                                          options=["marketing", "service"])
        self.consent_source = w.Text(description="Source", placeholder="phone, in_store …")
        self.consent_evidence = w.Textarea(description="Evidence",
                                           placeholder="who, when, how it can be proven")
        self.record_btn = button("Record consent", icon="check")
        self.card = w.VBox([
            self.card_title, self.card_name, self.card_language, self.card_timezone,
            self.card_attributes, self.save_btn, w.HTML("<b>Consent</b>"),
            self.consent_history,
            w.HBox([self.consent_action, self.consent_purpose]),
            self.consent_source, self.consent_evidence, self.record_btn,
            self.status])   # the same line again next to the card's buttons
        self.card.layout.display = "none"

        self.children = [
            w.HTML(f"<h3>Labels of {html.escape(self.account['display_name'] or '')} "
                   f"({html.escape(self.account['phone_e164'])})</h3>"),
            self.labels_table,
            w.HBox([self.name_box, self.color_pick, self.create_btn]),
            w.HBox([self.label_pick, self.rename_btn, self.recolor_btn, self.delete_btn]),
            w.HBox([self.merge_into, self.merge_btn, self.refresh_btn]),
            self.confirm,
            self.status,
            w.HTML("<h3>Contacts</h3>"),
            w.HBox([self.search, self.find_btn]),
            w.HBox([self.any_of, self.all_of, self.none_of]),
            self.found, self.results, self.pager,
            w.HBox([self.bulk_label, self.scope, self.assign_btn, self.unassign_btn]),
            self.card,
        ]

        self.create_btn.on_click(lambda _: self.create())
        self.rename_btn.on_click(lambda _: self.rename())
        self.recolor_btn.on_click(lambda _: self.recolor())
        self.merge_btn.on_click(lambda _: self.merge())
        self.delete_btn.on_click(lambda _: self.delete())
        self.refresh_btn.on_click(lambda _: self.refresh())
        self.find_btn.on_click(lambda _: self.find())
        self.search.observe(lambda _: self.find(), "value")
        for box in (self.any_of, self.all_of, self.none_of):
            box.observe(lambda _: self.find(), "value")
        self.pager.on_change(lambda _: self.act(self._load_page, busy="Loading…"))
        self.assign_btn.on_click(lambda _: self.bulk(add=True))
        self.unassign_btn.on_click(lambda _: self.bulk(add=False))
        self.results.observe(self._selection_changed, "value")
        self.save_btn.on_click(lambda _: self.save_contact())
        self.record_btn.on_click(lambda _: self.record_consent())
        self.refresh()

    # --- reading ----------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the labels and the current page again (other people may have changed them)."""
        self.act(self._load_all, busy="Loading…")

    def _load_all(self) -> None:
        self._load_labels()
        self._load_page()

    def _load_labels(self) -> None:
        self.labels = self.ws.labels.list(self.account_ref)
        self.labels_table.value = html_table(
            self.labels, {"hex": "", "name": "Label", "contacts": "Contacts", "chats": "Chats"},
            formatters={"hex": swatch}, empty="No labels yet: create the first one below.")
        names = self.labels["name"].tolist()
        for box in (self.label_pick, self.merge_into, self.bulk_label):
            keep = box.value
            box.options = names
            box.value = keep if keep in names else (names[0] if names else None)
        for box in (self.any_of, self.all_of, self.none_of):
            keep = tuple(v for v in box.value if v in names)
            box.options = names   # observers run inside this action: act() ignores them
            box.value = keep

    def filter(self) -> dict:
        """The finder's current filter, as the services take it."""
        return {"query": self.search.value.strip() or None,
                "any_of": list(self.any_of.value) or None,
                "all_of": list(self.all_of.value) or None,
                "none_of": list(self.none_of.value) or None}

    def find(self) -> None:
        """Search with the current filter, from the first page."""
        self.pager.reset()
        self.act(self._load_page, busy="Searching…")

    def _load_page(self) -> None:
        page = self.ws.contacts.search(self.account_ref, limit=self.pager.page_size,
                                       offset=self.pager.offset, **self.filter())
        self.page_rows, self.total = page.rows, page.total
        self.pager.set_total(page.total)
        self.found.value = f"<b>{page.total:,}</b> contacts found"
        options = [(_contact_line(r), int(r["contact_id"])) for r in page.rows.to_dict("records")]
        self.results.value = ()
        self.results.options = options

    # --- labels -----------------------------------------------------------------------

    def _after_change(self, message: str) -> str:
        self._load_labels()
        self._load_page()
        return message

    def create(self) -> None:
        name = self.name_box.value

        def done(label):
            self.name_box.value = ""
            self.label_pick.value = None
            message = self._after_change(f"Created label {label['name']!r}.")
            self.label_pick.value = label["name"]
            return message

        self.act(lambda: self.ws.labels.create(self.account_ref, name,
                                               color=self.color_pick.value or None),
                 busy="Creating…", done=done)

    def rename(self) -> None:
        old, new = self.label_pick.value, self.name_box.value
        if not self._need(old, "Pick the label to rename."):
            return

        def done(label):
            self.name_box.value = ""
            message = self._after_change(f"Renamed {old!r} to {label['name']!r}.")
            self.label_pick.value = label["name"]
            return message

        self.act(lambda: self.ws.labels.rename(self.account_ref, old, new), busy="Renaming…",
                 done=done)

    def recolor(self) -> None:
        name, colour = self.label_pick.value, self.color_pick.value
        if not self._need(name, "Pick the label to recolour.") or \
                not self._need(colour, "Pick a colour (1-20) first."):
            return
        self.act(lambda: self.ws.labels.recolor(self.account_ref, name, colour),
                 busy="Recolouring…",
                 done=lambda label: self._after_change(
                     f"{label['name']!r} now has colour {label['color']}."))

    def _counts(self, name: str) -> tuple[int, int]:
        row = self.labels[self.labels["name"] == name]
        return (int(row["contacts"].iloc[0]), int(row["chats"].iloc[0])) if len(row) else (0, 0)

    def merge(self) -> None:
        source, into = self.label_pick.value, self.merge_into.value
        if not self._need(source and into, "Pick the label to merge and the one to keep."):
            return
        contacts, chats = self._counts(source)
        self.confirm.ask(
            f"Merge {source!r} into {into!r}? {contacts:,} contacts and {chats:,} chats move "
            f"to {into!r}, then {source!r} is deleted.",
            lambda: self.act(lambda: self.ws.labels.merge(self.account_ref, source, into),
                             busy="Merging…",
                             done=lambda r: self._after_change(
                                 f"Merged {source!r} into {r['name']!r}: {r['contacts_moved']:,} "
                                 f"contacts and {r['chats_moved']:,} chats gained it.")),
            yes="Merge")

    def delete(self) -> None:
        name = self.label_pick.value
        if not self._need(name, "Pick the label to delete."):
            return
        contacts, chats = self._counts(name)
        self.confirm.ask(
            f"Delete the label {name!r}? It is on {contacts:,} contacts and {chats:,} chats.",
            lambda: self.act(lambda: self.ws.labels.delete(self.account_ref, name),
                             busy="Deleting…",
                             done=lambda r: self._after_change(
                                 f"Deleted {r['name']!r} (it was on {r['contacts']:,} contacts "
                                 f"and {r['chats']:,} chats).")),
            yes="Delete")

    def bulk(self, *, add: bool) -> None:
        """Assign (or remove) the chosen label for the selection or the whole filter."""
        label = self.bulk_label.value
        if not self._need(label, "Pick the label to assign or remove."):
            return
        if self.scope.value == "selected":
            targets = list(self.results.value)
            if not self._need(targets, "Select contacts first, or choose 'every contact found'."):
                return
        else:
            targets = {k: v for k, v in self.filter().items() if v}   # type: ignore[assignment]
        verb = "Labelled" if add else "Unlabelled"

        def run():
            method = self.ws.labels.assign if add else self.ws.labels.unassign
            return method(self.account_ref, label, targets)

        def go():
            self.act(run, busy="Labelling…" if add else "Removing…",
                     done=lambda r: self._after_change(
                         f"{verb} {r['contacts']:,} contacts with {r['label']!r}."))

        if self.scope.value == "filter" and not add:
            self.confirm.ask(f"Remove {label!r} from every contact found ({self.total:,})?",
                             go, yes="Remove")
        else:
            go()

    # --- the contact card -------------------------------------------------------------

    def _selection_changed(self, change) -> None:
        if len(change["new"]) == 1:
            self.open_contact(change["new"][0])

    def open_contact(self, contact_id: int) -> None:
        """Show the card of one contact (picked in the list, or by id)."""
        self.act(lambda: self._load_card(int(contact_id)), busy="Opening…")

    def _load_card(self, contact_id: int) -> None:
        contact = self.ws.contacts.get(self.account_ref, contact_id)
        history = self.ws.consent.history(contact_id)
        self.contact = contact
        self.card_title.value = (f"<h4>{html.escape(contact['name'] or '(no name)')} · "
                                 f"{html.escape(contact['phone_e164'] or contact['wa_id'] or '')}"
                                 "</h4>")
        self.card_name.value = contact["name"] or ""
        self.card_language.value = contact["language"] or ""
        self.card_timezone.value = contact["timezone"] or ""
        attributes = contact.get("attributes")
        self.card_attributes.value = json.dumps(attributes, ensure_ascii=False) if attributes else ""
        self.consent_history.value = html_table(
            history, {"recorded_at": "When", "purpose": "Purpose", "action": "Action",
                      "source": "Source", "evidence": "Evidence"},
            formatters={"recorded_at": _when},
            empty="No consent recorded: marketing messages are not allowed.")
        self.card.layout.display = "flex"

    def save_contact(self) -> None:
        if not self._need(self.contact, "Open a contact first."):
            return
        assert self.contact is not None
        cid = self.contact["contact_id"]
        fields = {"name": self.card_name.value.strip() or None,
                  "language": self.card_language.value.strip() or None,
                  "timezone": self.card_timezone.value.strip() or None,
                  "attributes": self.card_attributes.value.strip() or None,
                  "replace_attributes": True}

        def done(contact):
            self._load_card(cid)
            self._load_page()
            return f"Saved {contact['name'] or contact['phone_e164']}."

        self.act(lambda: self.ws.contacts.update(self.account_ref, cid, **fields),
                 busy="Saving…", done=done)

    def record_consent(self) -> None:
        if not self._need(self.contact, "Open a contact first."):
            return
        assert self.contact is not None
        cid = self.contact["contact_id"]
        action = self.consent_action.value

        def done(event):
            self.consent_source.value = ""
            self.consent_evidence.value = ""
            self._load_card(cid)
            self._load_page()
            what = "opt-in" if action == "opt_in" else "opt-out"
            return f"Recorded the {event['purpose']} {what} ({event['source']})."

        self.act(lambda: self.ws.consent.record(
            cid, account=self.account_ref, action=action, purpose=self.consent_purpose.value,
            source=self.consent_source.value, evidence=self.consent_evidence.value.strip() or None,
            actor=self.actor),
            busy="Recording…", done=done)

    def _need(self, value, message: str) -> bool:
        if value:
            return True
        self.status.error(message)
        return False


__all__ = ["LabelManager", "swatch"]
