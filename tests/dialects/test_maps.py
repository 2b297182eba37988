"""Pure translation functions: enum maps both ways, field renames, partial-update merges."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from numberplane.agents.schemas import AgentRead
from numberplane.dialects import common
from numberplane.dialects import freya_map as fm
from numberplane.dialects import helloannie_map as hm
from numberplane.dialects import retell_map as rm
from numberplane.dialects import signalwire_map as sm
from numberplane.dialects import vocode_map as vm
from numberplane.dialects import zudu_map as zm
from numberplane.kernel.errors import ValidationFailed
from numberplane.numbers.schemas import AgentBindingRead, PhoneNumberBuy, PhoneNumberRead, PhoneNumberUpdate

NOW = dt.datetime(2024, 1, 15, 10, 30, tzinfo=dt.UTC)


def number(**fields: Any) -> PhoneNumberRead:
    base: dict[str, Any] = {
        "id": "0190d1c2-0000-7000-8000-000000000001",
        "org_id": "0190d1c2-0000-7000-8000-0000000000aa",
        "phone_number": "+14157774444",
        "phone_number_pretty": "+1 (415) 777-4444",
        "country": "US",
        "area_code": "415",
        "number_type": "local",
        "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
        "status": "active",
        "origin": "purchased",
        "carrier": "sandbox",
        "created_at": NOW,
        "updated_at": NOW,
        "last_modification_timestamp": 1705314600000,
    }
    return PhoneNumberRead(**(base | fields))


def agent(agent_id: str = "a1", **fields: Any) -> AgentRead:
    base: dict[str, Any] = {
        "id": agent_id,
        "org_id": "0190d1c2-0000-7000-8000-0000000000aa",
        "name": "Agent",
        "version": 3,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return AgentRead(**(base | fields))


def test_common_helpers() -> None:
    assert common.iso(NOW) == "2024-01-15T10:30:00Z"
    assert common.iso(NOW, millis=True) == "2024-01-15T10:30:00.000Z"
    assert (
        common.derived_id("a1", "prompt")
        == common.derived_id("a1", "prompt")
        != common.derived_id("a2", "prompt")
    )
    bindings = [
        AgentBindingRead(agent_id="x", version=None, weight=0.3),
        AgentBindingRead(agent_id="y", version=2, weight=0.7),
    ]
    assert common.primary_agent(bindings).agent_id == "y"  # type: ignore[union-attr]
    assert common.bindings(None) == [] and common.bindings("a", 2) == [{"agent_id": "a", "version": 2}]
    assert common.extras_write({"zudu": {"a": 1}, "freya": {"b": 2}}, "freya", {"b": None, "c": 3}) == {
        "zudu": {"a": 1},
        "freya": {"c": 3},
    }
    with pytest.raises(ValidationFailed) as err:
        common.build(
            PhoneNumberUpdate, {"inbound_agents": [{"agent_id": ""}]}, names={"inbound_agents": "botId"}
        )
    assert err.value.errors[0].field == "botId[0].agent_id"
    assert common.capability_list({"voice": True, "fax": True}) == ["voice", "fax"]


def test_helloannie_enums_both_ways() -> None:
    body = hm.CreateBody(
        orgId="o", botId="b", name="Front desk", language="FRENCH", voiceId="KIND_CURIOUS", areaCode="415"
    )
    data = common.build(PhoneNumberBuy, hm.buy_request(body))
    assert data.language == "fr" and data.voice is not None and data.voice.voice_id == "kind_curious"
    assert data.area_code == "415" and data.inbound_agents and data.inbound_agents[0].agent_id == "b"
    out = hm.phone_number(
        number(language="fr-CA", voice={"provider": "helloannie", "voice_id": "kind_curious", "speed": 1.1}),
        {},
    )
    assert out["language"] == "FRENCH" and out["voiceId"] == "KIND_CURIOUS" and out["speed"] == 1.1
    assert hm.phone_number(number(language="de"), {})["language"] is None
    # Tuning falls back to the bot's voice; the number's own value wins.
    bot = agent("b", voice={"stability": 0.2, "speed": 0.9})
    bound = number(
        voice={"voice_id": "calm_reassuring", "speed": 1.5},
        inbound_agents=[AgentBindingRead(agent_id="b", version=None, weight=1)],
    )
    out = hm.phone_number(bound, {"b": bot})
    assert (out["speed"], out["stability"], out["botId"]) == (1.5, 0.2, "b")


def test_freya_enums_both_ways() -> None:
    config = fm.Config.model_validate(
        {
            "configType": "WORKFLOWS",
            "inboundWorkflowId": "wf1",
            "capabilities": {"voice": "disabled", "sms": True},
            "sipOutbound": {"transportProtocol": "tls", "endpoint": "t.example.com"},
        }
    )
    core, extras = fm.config_changes(config, None)
    assert core["sip_outbound"] == {"endpoint": "t.example.com", "transport": "tls"}
    assert core["capabilities"]["voice"] is False and core["capabilities"]["sms"] is True
    assert extras == {"configType": "workflows", "inboundWorkflowId": "wf1"}
    stored = number(
        sip_outbound={"endpoint": "t.example.com", "transport": "tls", "password_set": True},
        capabilities={"voice": False, "sms": True},
        extras={"freya": extras},
    )
    out = fm.phone_number(stored, {})
    assert out["config"]["sipOutbound"]["transportProtocol"] == "TLS"
    assert out["config"]["sipOutbound"]["password"] is None
    assert out["config"]["configType"] == "workflows" and out["config"]["inboundWorkflowId"] == "wf1"
    assert out["config"]["capabilities"] == {"voice": "disabled", "sms": True}


def test_signalwire_number_type_and_handlers() -> None:
    assert sm.number_type_in("tollfree") == sm.number_type_in("toll-free") == "toll_free"
    assert sm.number_type_out("toll_free") == "toll-free" and sm.number_type_out("mobile") == "longcode"
    assert (
        sm.import_row(sm.ImportBody(number="+18885550123", number_type="tollfree"))["number_type"]
        == "toll_free"
    )
    current = number(call_handler={"type": "laml_webhooks", "request_url": "https://a.example.com/v"})
    body = sm.UpdateBody.model_validate(
        {"call_fallback_url": "https://a.example.com/fb", "call_request_method": "get"}
    )
    assert sm.update_request(body, current) == {
        "call_handler": {
            "type": "laml_webhooks",
            "request_url": "https://a.example.com/v",
            "fallback_url": "https://a.example.com/fb",
            "request_method": "GET",
        }
    }
    assert sm.update_request(sm.UpdateBody.model_validate({"call_handler": None}), current) == {
        "call_handler": None
    }
    with pytest.raises(ValidationFailed):
        sm.update_request(
            sm.UpdateBody.model_validate({"message_request_url": "https://x.example.com"}), current
        )
    out = sm.phone_number(current)
    assert out["call_handler"] == "laml_webhooks" and out["call_request_method"] == "POST"
    assert sm.phone_number(number(call_handler={"type": "agents"}))["call_handler"] is None
    assert sm.matches("+14155550142", "415", None) and not sm.matches("+14155550142", None, "0199")


def test_retell_and_zudu_types_and_agents() -> None:
    assert rm.phone_number_type(number()) == "retell-twilio"
    assert rm.phone_number_type(number(carrier="telnyx")) == "retell-telnyx"
    assert rm.phone_number_type(number(origin="imported")) == "custom"
    assert zm.phone_number_type(number(origin="imported")) == "CUSTOM"
    assert zm.phone_number_type(number(carrier="telnyx")) == "zudu-telnyx"
    assert (
        zm.phone_number_type(number(extras={"zudu": {"phone_number_type": "zudu-twilio"}})) == "zudu-twilio"
    )

    body = rm.UpdateBody.model_validate(
        {
            "inbound_agents": [{"agent_id": "a", "weight": 1, "agent_version": "latest"}],
            "outbound_agents": None,
        }
    )
    assert rm.agent_changes(body, create=False) == {
        "inbound_agents": [{"agent_id": "a", "weight": 1.0}],
        "outbound_agents": [],
    }
    legacy = rm.CreateBody.model_validate(
        {"inbound_agent_id": "a", "inbound_agent_version": 2, "inbound_agents": []}
    )
    assert rm.agent_changes(legacy, create=True) == {"inbound_agents": [{"agent_id": "a", "version": 2}]}
    with pytest.raises(ValidationFailed):
        rm.agent_changes(
            rm.UpdateBody.model_validate(
                {"inbound_agents": [{"agent_id": "a", "weight": 1, "agent_version": "prod"}]}
            ),
            create=False,
        )

    bound = number(inbound_agents=[AgentBindingRead(agent_id="a", version=None, weight=1)])
    out = rm.phone_number(bound, {"a": agent("a")})
    assert out["inbound_agent_version"] == 3 and out["inbound_agents"] == [{"agent_id": "a", "weight": 1.0}]
    assert out["area_code"] == 415 and "area_code" not in rm.phone_number(
        number(phone_number="+442079460000", area_code="20"), {}
    )

    pin = zm.update_request(zm.UpdateBody.model_validate({"inbound_agent_version": 2, "label": "L"}), bound)
    assert pin == {"name": "L", "inbound_agents": [{"agent_id": "a", "version": 2}]}


def test_vocode_voices_actions_and_agents() -> None:
    fields = vm.agent_fields(
        {
            "prompt": {"content": "P"},
            "voice": {
                "type": "voice_eleven_labs",
                "voice_id": "v",
                "similarity_boost": 0.4,
                "api_key": "secret",
            },
            "actions": [{"type": "action_dtmf", "config": {"digits": "12"}}],
            "webhook": {"url": "https://h.example.com", "subscriptions": ["event_message"], "method": "get"},
            "conversation_speed": 1.2,
        },
        update=False,
    )
    assert fields["name"] == vm.DEFAULT_AGENT_NAME and fields["prompt"] == "P"
    assert fields["voice"] == {"voice_id": "v", "similarity": 0.4, "provider": "elevenlabs"}
    assert fields["actions"] == [{"type": "send_dtmf", "config": {"digits": "12"}}]
    assert fields["webhook"]["method"] == "GET" and fields["metadata"] == {
        "vocode": {"conversation_speed": 1.2}
    }
    assert vm.agent_fields({"name": {}, "prompt": "x"}, update=True) == {"prompt": "x"}
    with pytest.raises(ValidationFailed):
        vm.agent_fields({"actions": [{"type": "action_set_hold"}]}, update=False)

    for provider, kind in (
        ("azure", "voice_azure"),
        ("elevenlabs", "voice_eleven_labs"),
        ("rime", "voice_rime"),
    ):
        assert vm.voice_out({"provider": provider, "voice_id": "v"}, "a", "u")["type"] == kind
    assert vm.voice_out({"provider": "helloannie", "voice_id": "calm"}, "a", "u")["voice_name"] == "calm"
    assert vm.voice_out(None, "a", "u")["type"] == "voice_vocode"

    stored = agent(
        "a",
        prompt="Hi",
        actions=[{"type": "transfer_call", "config": {"phone_number": "+14155550100"}}],
        webhook={"url": "https://h.example.com", "subscriptions": []},
        metadata={"vocode": {"conversation_speed": 1.2}},
    )
    out = vm.agent_out(stored)
    assert out["actions"][0]["type"] == "action_transfer_call" and out["actions"][0]["id"]
    assert out["webhook"]["method"] == "POST" and out["conversation_speed"] == 1.2
    assert out["prompt"]["content"] == "Hi" and out["user_id"] == stored.org_id
    body = vm.UpdateBody.model_validate({"label": {}, "outbound_only": True, "example_context": {}})
    assert vm.update_request(body, number()) == {"outbound": True}
