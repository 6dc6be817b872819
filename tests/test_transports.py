"""Transports: the simulated platform (deterministic, honours keys, receipts through the
webhook path, simulated clock) and the Cloud API client against a fake Graph API server
on 127.0.0.1 (success, 429, 5xx, error codes, the token kept secret)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from fake_graph import FakeGraph
from webhook_samples import FIXTURES

import bizchat
from bizchat.campaigns import outbox
from bizchat.campaigns.transports import (
    OutboundMessage,
    SimRates,
    SimulatedTransport,
    TransportError,
    make,
)
from bizchat.campaigns.transports.cloud_api import (
    CloudApiTransport,
    build_payload,
    retry_after_seconds,
)

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)   # a Wednesday, 10:00 in Berlin
TOKEN = "EAAG-very-secret-token-0123456789"


@pytest.fixture
def account(ws):
    return ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id="106540352242922")


def _messages(n, *, start=T0, rate=80.0, category="marketing", kind="template", prefix="k",
              labels=(), variant="A", to=None):
    return [OutboundMessage(
        f"{prefix}{i}", "106540352242922", to or f"49170{i:07d}", kind=kind,
        template_name="promo" if kind == "template" else None, language="de",
        params={"first_name": f"Kundin {i}"}, body=f"Hallo Kundin {i}",
        send_at=start + timedelta(seconds=i / rate), category=category, variant=variant,
        labels=tuple(labels), broadcast_id=1) for i in range(n)]


def _sim(ws, account, seed=1, **options):
    transport = SimulatedTransport(seed, **options)
    transport.attach(ws, account=account, rate=80)
    return transport


def _events(ws):
    return ws.sql('SELECT message_id, status, "at", recipient_id, error_code, callback_data '
                  "FROM message_events ORDER BY message_id, status")


# --- SimulatedTransport ------------------------------------------------------------------

def test_simulated_is_deterministic_per_seed(tmp_path):
    def run(name, seed):
        ws = bizchat.open(tmp_path / f"{name}.duckdb")
        acc = ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id="106540352242922")
        transport = _sim(ws, acc, seed)
        results = transport.send_batch(_messages(400))
        with ws.transaction() as con:
            outbox.ingest_receipts(con, transport)
        return [(r.message_id, r.error_code) for r in results], _events(ws)

    first, events1 = run("a", 7)
    again, events2 = run("b", 7)
    other, events3 = run("c", 8)
    assert first == again
    pd.testing.assert_frame_equal(events1, events2)
    assert first != other or not events1.equals(events3)
    assert not events1[["status", "at"]].equals(events3[["status", "at"]])


def test_simulated_honours_the_idempotency_key_across_instances(ws, account):
    results = _sim(ws, account, 3).send_batch(_messages(50, category="utility"))
    assert all(r.ok and r.message_id.startswith("wamid.SIM") for r in results)
    # A new instance (a new process) knows the keys from the ledger in the workspace.
    again = _sim(ws, account, 99).send_batch(_messages(50, category="utility"))
    assert [r.message_id for r in again] == [r.message_id for r in results]
    assert [r.sent_at for r in again] == [r.sent_at for r in results]
    ledger = ws.sql("SELECT event, count(*) AS n, count(DISTINCT idempotency_key) AS keys "
                    "FROM outbox_log GROUP BY event").set_index("event")
    assert ledger.loc["simulated.accept", "n"] == 50 == ledger.loc["simulated.accept", "keys"]
    assert ledger.loc["simulated.duplicate", "n"] == 50


def test_simulated_same_key_twice_in_one_batch_is_one_message(ws, account):
    one = _messages(1, category="utility")[0]
    results = _sim(ws, account).send_batch([one, one])
    assert results[0].message_id == results[1].message_id
    assert ws.sql("SELECT count(*) AS n FROM outbox_log WHERE event = 'simulated.accept'").n[0] == 1


def test_simulated_receipts_go_through_the_webhook_path(ws, account):
    transport = _sim(ws, account, 5, rates=SimRates(undeliverable=0.1, reengagement=0.5))
    results = transport.send_batch(_messages(300, category="utility")
                                   + _messages(200, kind="text", category="utility", prefix="t",
                                               start=T0 + timedelta(minutes=5)))
    with ws.transaction() as con:
        offered = outbox.ingest_receipts(con, transport)
    assert offered > 500
    raw = ws.sql("SELECT body, state FROM raw_payloads")
    assert len(raw) > 0 and set(raw.state) == {"ingested"}
    body = json.loads(raw.body[0])
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["biz_opaque_callback_data"].startswith(("k", "t"))
    events = _events(ws)
    assert set(events.status) == {"sent", "delivered", "read", "failed"}
    by_key = {r.idempotency_key: r.message_id for r in results}
    assert len(events) >= len(results) > 0
    assert (events.callback_data.map(by_key) == events.message_id).all()
    codes = events[events.status == "failed"].set_index("callback_data").error_code
    assert set(codes[codes.index.str.startswith("k")]) == {131026}
    assert set(codes[codes.index.str.startswith("t")]) == {131047}
    # Receipts come after the send, in order, on the simulated clock.
    status = ws.sql("SELECT * FROM message_status")
    sent_at = pd.Series({r.message_id: r.sent_at for r in results})
    ok = status[status.sent_at.notna()]
    assert (ok.sent_at.to_numpy() >= sent_at[ok.message_id].dt.floor("s").to_numpy()).all()
    assert (ok.delivered_at.dropna() >= ok.loc[ok.delivered_at.notna(), "sent_at"]).all()
    assert (ok.read_at.dropna() >= ok.loc[ok.read_at.notna(), "delivered_at"]).all()


def test_simulated_bulk_ingest_writes_the_same_rows_as_webhooks(tmp_path):
    frames = []
    for mode in ("webhook", "bulk"):
        ws = bizchat.open(tmp_path / f"{mode}.duckdb")
        acc = ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id="106540352242922")
        transport = _sim(ws, acc, 11, ingest=mode,
                         rates=SimRates(undeliverable=0.05, reengagement=0.3))
        transport.send_batch(_messages(300) + _messages(100, kind="text", prefix="t",
                                                        start=T0 + timedelta(minutes=9)))
        with ws.transaction() as con:
            outbox.ingest_receipts(con, transport)
        frames.append((ws.sql("SELECT * EXCLUDE (received_at) FROM message_events "
                              "ORDER BY message_id, status"),
                       ws.sql("SELECT * EXCLUDE (updated_at) FROM message_status "
                              "ORDER BY message_id")))
    pd.testing.assert_frame_equal(frames[0][0], frames[1][0])
    pd.testing.assert_frame_equal(frames[0][1], frames[1][1])


def test_simulated_read_rates_depend_on_label_hour_and_variant(ws, account):
    rates = SimRates(label_effects={"VIP": 2.0}, variant_effects={"A": 0.0, "B": 1.5})
    account_rates = dict(account)

    def rate(prefix, **kw):
        transport = SimulatedTransport(21, rates=rates)
        transport.attach(ws, account=account_rates, rate=80)
        messages = _messages(1500, category="utility", prefix=prefix, **kw)
        results = transport.send_batch(messages)
        with ws.transaction() as con:
            outbox.ingest_receipts(con, transport)
        ids = [r.message_id for r in results if r.ok]
        return ws.sql("SELECT avg((read_at IS NOT NULL)::INT) AS r FROM message_status "
                      "WHERE list_contains(?, message_id)", [ids]).r[0]

    plain = rate("p")
    assert rate("v", labels=["VIP"], start=T0 + timedelta(hours=1)) > plain + 0.1
    assert rate("b", variant="B", start=T0 + timedelta(hours=2)) > plain + 0.1
    # 03:00 in Berlin reads worse than 10:00 on the same weekday.
    night = T0.replace(hour=2) + timedelta(days=7)
    assert rate("n", start=night) < plain - 0.1


def test_simulated_platform_rules_rate_and_pair_gap(ws, account):
    transport = _sim(ws, account, 2)
    # 200 messages in one second at a number that takes 80 per second.
    flood = transport.send_batch(_messages(200, rate=200.0, category="utility"))
    codes = [r.error_code for r in flood]
    assert codes.count(130429) == 120 and all(r.retry_after == 1.0 for r in flood if not r.ok)
    # Two messages to one user 2 s apart: the second is refused with 131056.
    pair = _messages(2, rate=0.5, category="utility", prefix="pair", to="4917099999999",
                     start=T0 + timedelta(minutes=10))
    first, second = transport.send_batch(pair)
    assert first.ok and second.error_code == 131056 and second.retry_after == 6.0


def test_simulated_marketing_limits_are_marketing_only(ws, account):
    rates = SimRates(stopped_marketing=0.3, marketing_limit=0.3)
    marketing = _sim(ws, account, 4, rates=rates).send_batch(_messages(300))
    codes = pd.Series([r.error_code for r in marketing]).value_counts()
    assert codes[131050] > 40 and codes[131049] > 40
    assert all(not r.ok and r.message_id is None for r in marketing if r.error_code)
    utility = _sim(ws, account, 4, rates=rates).send_batch(
        _messages(300, category="utility", prefix="u", start=T0 + timedelta(hours=1)))
    assert all(r.ok for r in utility)
    # 131049 is drawn per attempt: a later attempt of a limited key can pass.
    limited = [m for m, r in zip(_messages(300), marketing, strict=True) if r.error_code == 131049]
    later = [OutboundMessage(**{**m.__dict__, "attempt": 2,
                                "send_at": m.send_at + timedelta(days=1)}) for m in limited]
    retried = _sim(ws, account, 4, rates=rates).send_batch(later)
    assert any(r.ok for r in retried)


def test_simulated_clock_runs_hours_of_sending_in_wall_seconds(ws, account):
    transport = _sim(ws, account, 9, ingest="bulk")
    frame = pd.DataFrame({
        "idempotency_key": [f"fast{i}" for i in range(50_000)],
        "phone_number_id": "106540352242922", "to": [f"49171{i:07d}" for i in range(50_000)],
        "kind": "template", "template_name": "promo", "category": "utility", "variant": "A",
        "labels": [()] * 50_000, "attempt": 1, "broadcast_id": 1,
        "send_at": pd.Timestamp(T0) + pd.to_timedelta(pd.RangeIndex(50_000) * 12_500, unit="us"),
    })
    started = time.monotonic()
    results = transport.send_frame(frame)
    with ws.transaction() as con:
        outbox.ingest_receipts(con, transport)
    assert time.monotonic() - started < 20
    assert results.ok.all()
    span = ws.sql("SELECT max(sent_at) - min(sent_at) AS span FROM message_status").span[0]
    assert span >= timedelta(minutes=10)


def test_simulated_recover_redelivers_lost_receipts(ws, account):
    transport = _sim(ws, account, 6)
    transport.send_batch(_messages(40, category="utility"))
    # The process dies before the receipts are delivered: a new instance recovers them.
    assert ws.sql("SELECT count(*) AS n FROM message_events").n[0] == 0
    fresh = _sim(ws, account, 6)
    with ws.transaction() as con:
        assert fresh.recover(con, 1) > 0
        assert outbox.ingest_receipts(con, fresh) > 0   # through the public ingest API
    assert ws.sql("SELECT count(DISTINCT message_id) AS n FROM message_events").n[0] == 40
    with ws.transaction() as con:
        assert fresh.recover(con, 1) == 0


def test_simulated_needs_a_workspace():
    with pytest.raises(TransportError, match="attach"):
        SimulatedTransport(1).send_batch(_messages(1))


def test_make_transport():
    assert isinstance(make(None, seed=3), SimulatedTransport) and make(None, seed=3).seed == 3
    assert isinstance(make("cloud"), CloudApiTransport)
    with pytest.raises(ValueError, match="Unknown transport"):
        make("carrier-pigeon")


# --- CloudApiTransport -------------------------------------------------------------------

def test_template_payload_has_the_documented_shape():
    documented = json.loads((FIXTURES / "cloud_api" / "send_template_named.json").read_text())
    message = OutboundMessage("key-1", "123", "+16505551234", kind="template",
                              template_name="order_confirmation", language="en_US",
                              params={"first_name": "Jessica", "order_number": "SKBUP2-4CPIG9"})
    payload = build_payload(message)
    assert payload.pop("biz_opaque_callback_data") == "key-1"
    assert payload == documented
    text = build_payload(OutboundMessage("key-2", "123", "+16505551234", kind="text", body="Hi"))
    assert text["type"] == "text" and text["text"]["body"] == "Hi"
    assert text["biz_opaque_callback_data"] == "key-2"
    parts = build_payload(OutboundMessage("k", "1", "49", template_name="t", params={
        "header": {"title": "Sommer"}, "body": {"first_name": "Jo"},
        "buttons": [{"text": "abc123"}]}))
    types = [c["type"] for c in parts["template"]["components"]]
    assert types == ["header", "body", "button"]
    assert parts["template"]["components"][0]["parameters"][0]["parameter_name"] == "title"


def _cloud(graph, account, ws, **options):
    transport = CloudApiTransport(base_url=graph.url, token=TOKEN, backoff=0.01, **options)
    transport.attach(ws, account=account, rate=options.pop("rate", 200))
    return transport


def test_cloud_success_posts_to_the_graph_api(ws, account, monkeypatch):
    with FakeGraph(token=TOKEN) as graph:
        monkeypatch.setenv("BIZCHAT_GRAPH_URL", graph.url)
        monkeypatch.setenv("BIZCHAT_GRAPH_VERSION", "v21.0")
        monkeypatch.setenv("BIZCHAT_ACCESS_TOKEN", TOKEN)
        transport = make("cloud")
        transport.attach(ws, account=account, rate=100)
        results = transport.send_batch(_messages(5))
        transport.close()
    assert all(r.ok and r.message_id.startswith("wamid.FAKE") for r in results)
    assert len({r.message_id for r in results}) == 5
    request = graph.requests[0]
    assert request["path"] == "/v21.0/106540352242922/messages"
    assert request["authorization"] == f"Bearer {TOKEN}"
    sent = {r["json"]["biz_opaque_callback_data"]: r["json"] for r in graph.requests}
    assert set(sent) == {f"k{i}" for i in range(5)}
    assert sent["k0"]["template"]["components"][0]["parameters"][0] == {
        "type": "text", "parameter_name": "first_name", "text": "Kundin 0"}


def test_cloud_defaults():
    transport = CloudApiTransport(token="x")
    assert transport.base_url == "https://graph.facebook.com" and transport.version == "v23.0"


def test_cloud_retries_429_honouring_retry_after(ws, account):
    with FakeGraph(token=TOKEN) as graph:
        graph.script(FakeGraph.error(130429, status=429, retry_after="0.3"), FakeGraph.ok())
        transport = _cloud(graph, account, ws, workers=1)
        [result] = transport.send_batch(_messages(1))
        transport.close()
    assert result.ok
    assert len(graph.requests) == 2
    assert graph.requests[1]["at"] - graph.requests[0]["at"] >= 0.29


def test_cloud_retries_5xx(ws, account):
    with FakeGraph(token=TOKEN) as graph:
        graph.script(FakeGraph.raw(500, {"error": {"message": "boom", "code": 1}}),
                     FakeGraph.raw(503, b"upstream down"), FakeGraph.ok("wamid.AFTER"))
        transport = _cloud(graph, account, ws, workers=1)
        [result] = transport.send_batch(_messages(1))
        transport.close()
    assert result.ok and result.message_id == "wamid.AFTER" and len(graph.requests) == 3


@pytest.mark.parametrize("code", [131026, 131047, 131049, 131050, 131056, 132000])
def test_cloud_error_codes_become_failed_results(ws, account, code):
    with FakeGraph(token=TOKEN) as graph:
        graph.script(FakeGraph.error(code), to="491700000001")
        transport = _cloud(graph, account, ws)
        results = transport.send_batch(_messages(3))
        transport.close()
    assert results[0].ok and results[2].ok
    failed = results[1]
    assert not failed.ok and failed.error_code == code and not failed.unknown
    assert f"(#{code})" in failed.error_title and failed.message_id is None
    assert len(graph.sent_to("491700000001")) == 1   # not retried


def test_cloud_gives_up_on_persistent_throttling_with_retry_after(ws, account):
    with FakeGraph(token=TOKEN) as graph:
        graph.script(*[FakeGraph.error(130429)] * 3)
        transport = _cloud(graph, account, ws, workers=1, max_retries=2)
        [result] = transport.send_batch(_messages(1))
        transport.close()
    assert not result.ok and result.error_code == 130429 and result.retry_after > 0
    assert len(graph.requests) == 3


def test_cloud_long_retry_after_is_left_to_the_outbox(ws, account):
    with FakeGraph(token=TOKEN) as graph:
        graph.script(FakeGraph.error(130429, status=429, retry_after="120"))
        transport = _cloud(graph, account, ws, workers=1, max_backoff=5)
        started = time.monotonic()
        [result] = transport.send_batch(_messages(1))
        transport.close()
    assert time.monotonic() - started < 3
    assert result.error_code == 130429 and result.retry_after == pytest.approx(120)


def test_cloud_timeout_is_an_unknown_outcome(ws, account):
    with FakeGraph(token=TOKEN) as graph:
        graph.script(FakeGraph.ok(delay=1.0))
        transport = _cloud(graph, account, ws, workers=1, timeout=0.3)
        [result] = transport.send_batch(_messages(1))
        transport.close()
    assert not result.ok and result.unknown and len(graph.requests) == 1


def test_cloud_unreachable_api_is_retried_then_failed(ws, account):
    transport = CloudApiTransport(base_url="http://127.0.0.1:9", token=TOKEN, backoff=0.01,
                                  max_retries=2, workers=1)
    transport.attach(ws, account=account, rate=100)
    [result] = transport.send_batch(_messages(1))
    transport.close()
    assert not result.ok and not result.unknown and "cannot reach" in result.error_title


def test_cloud_paces_at_the_rate(ws, account):
    with FakeGraph(token=TOKEN) as graph:
        transport = _cloud(graph, account, ws, workers=4)
        transport.attach(ws, account=account, rate=20)
        messages = _messages(11, start=datetime.now(UTC) - timedelta(seconds=5))
        started = time.monotonic()
        assert all(r.ok for r in transport.send_batch(messages))
        transport.close()
    assert time.monotonic() - started >= 0.45   # 11 requests at 20/s: 10 intervals


def test_cloud_needs_token_and_phone_number_id(ws, account, monkeypatch):
    monkeypatch.delenv("BIZCHAT_ACCESS_TOKEN", raising=False)
    with pytest.raises(TransportError, match="BIZCHAT_ACCESS_TOKEN"):
        CloudApiTransport().attach(ws, account=account, rate=80)
    bare = ws.accounts.add("+49 30 901821", "Ohne ID")
    with pytest.raises(TransportError, match="phone_number_id"):
        CloudApiTransport(token=TOKEN).attach(ws, account=bare, rate=80)


def test_cloud_never_shows_the_token(ws, account, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with FakeGraph(token="a-different-token") as graph:   # every request is refused: 401
        graph.script(FakeGraph.error(130429, status=429, retry_after="0.01"))
        transport = _cloud(graph, account, ws, workers=2, max_retries=1)
        results = transport.send_batch(_messages(3))
        texts += [repr(transport), str(transport), repr(vars(transport))]
        texts += [f"{r}" for r in results]
        transport.close()
    assert all(r.error_code in (190, 130429) for r in results)
    for bad in (CloudApiTransport(base_url="http://127.0.0.1:9", token=TOKEN, max_retries=0),):
        bad.attach(ws, account=account, rate=80)
        texts += [repr(r) for r in bad.send_batch(_messages(1))]
        bad.close()
    try:
        build_payload(OutboundMessage("k", "1", "49", kind="template"))
    except TransportError as exc:
        texts.append(str(exc))
    assert caplog.records, "the transport logs its retries"
    everything = caplog.text + "\n".join(texts)
    assert TOKEN not in everything
    assert TOKEN[:12] not in everything


def test_retry_after_forms():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 25 <= retry_after_seconds(later) <= 31


def test_fake_graph_is_a_real_socket():
    with FakeGraph(token="t") as graph:
        answer = httpx.post(f"{graph.url}/v23.0/1/messages", json={"to": "1"},
                            headers={"Authorization": "Bearer t"})
    assert answer.status_code == 200 and answer.json()["messages"][0]["id"].startswith("wamid.")


def test_simulated_status_bodies_are_strict_json_when_values_are_missing(ws, account):
    # A column with no values at all arrives as float NaN; it must become null, not NaN.
    events = pd.DataFrame({
        "message_id": ["wamid.A", "wamid.B"], "status": ["sent", "sent"],
        "at": pd.to_datetime([T0, T0 + timedelta(seconds=5)], utc=True),
        "recipient_id": [float("nan")] * 2, "callback_data": [float("nan")] * 2,
        "billable": [True, float("nan")], "pricing_category": ["marketing", None],
        "error_code": [float("nan")] * 2,
    })
    items = _sim(ws, account).webhook_bodies(events)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    statuses = [s for _, _, text in items
                for e in json.loads(text, parse_constant=refuse)["entry"]
                for c in e["changes"] for s in c["value"]["statuses"]]
    assert [(s["id"], s["recipient_id"], s["biz_opaque_callback_data"], s["pricing"]["billable"])
            for s in statuses] == [("wamid.A", None, None, True), ("wamid.B", None, None, None)]
