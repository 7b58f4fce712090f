"""Checks of one training-file line against OpenAI's per-line schemas (supervised chat,
preference/DPO, reinforcement), plus the problems OpenAI's cookbook and experience add:
role order, empty content, special tokens.

Plain Python over the decoded dict, not a schema library: this runs once per line on
files of 100k lines and must keep pace with token counting. Each check reports
(code, field, message) through `emit`; severities and fixes live in `codes.CODES`.
"""
from __future__ import annotations

import re

from ftutils.data.codes import CODES  # noqa: F401  (re-exported: the codes these checks emit)

CHAT_ROLES = ("system", "user", "assistant", "tool", "function")
RL_ROLES = ("developer", "user", "assistant", "tool")
_BASE = {"role", "content", "name"}
MESSAGE_KEYS = {"system": _BASE, "developer": _BASE, "user": _BASE,
                "assistant": _BASE | {"weight", "tool_calls", "function_call", "refusal", "audio"},
                "tool": {"role", "content", "tool_call_id"}, "function": _BASE}
PART_TYPES = {"system": ("text",), "developer": ("text",), "tool": ("text",),
              "user": ("text", "image_url", "input_audio", "file"), "assistant": ("text", "refusal")}
_PLAIN_ROLES = frozenset(("system", "developer", "user", "assistant"))  # nothing required beyond role+content
_PLAIN_FOR = {r: _PLAIN_ROLES.intersection(r) for r in (CHAT_ROLES, RL_ROLES, ("assistant",))}
CHAT_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output", "preferred_completion", "non_preferred_completion"}
SPECIAL_TOKENS = re.compile(r"<\|(?:endoftext|startoftext|endofprompt|fim_prefix|fim_middle|fim_suffix|im_start|im_end|"
                            r"im_sep|start|end|message|channel|return|call|constrain)\|>")
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def json_kind(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def detect_format(obj: dict, method: str | None = None) -> str:
    """"chat", "preference", "reinforcement" or "unknown" for one decoded line."""
    if method == "reinforcement":
        return "reinforcement"
    if not PREFERENCE_KEYS.isdisjoint(obj):
        return "preference"
    if "messages" in obj:
        return "chat"
    return "unknown"


def check_line(obj: dict, emit, method: str | None = None) -> str:
    """Check one decoded line; report problems through emit(code, field, message). Returns its format."""
    fmt = detect_format(obj, method)
    if fmt == "chat":
        _check_chat(obj, emit)
    elif fmt == "preference":
        _check_preference(obj, emit)
    elif fmt == "reinforcement":
        _check_reinforcement(obj, emit)
    elif "prompt" in obj and "completion" in obj:
        emit("legacy_prompt_completion", "", "prompt/completion pairs are the legacy format; "
             "chat models are fine-tuned on {\"messages\": [...]}")
    else:
        keys = ", ".join(sorted(obj)[:5]) or "none"
        emit("missing_messages", "messages", f"no \"messages\" list (keys found: {keys})")
    return fmt


def _check_chat(obj: dict, emit) -> None:
    tools = functions = None
    if len(obj) > 1:  # only "messages" is the common case
        for key in obj:
            if key not in CHAT_KEYS:
                emit("unrecognized_key", key, f"{key!r} is not part of the chat training format and is ignored")
        tools = _check_tools(obj, "", emit)
        functions = _check_functions(obj, emit)
        if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
            emit("invalid_type", "parallel_tool_calls", f"must be true or false, got {json_kind(obj['parallel_tool_calls'])}")
    roles = _check_messages(obj["messages"], "messages", CHAT_ROLES, emit, tools, functions)
    if roles is not None:
        key = tuple(roles)
        problems = _ORDER_CACHE.get(key)
        if problems is None:  # few distinct role sequences recur on every line: judge each once
            problems = []
            _check_order(roles, "messages", lambda *args: problems.append(args))
            if len(_ORDER_CACHE) < 10_000:
                _ORDER_CACHE[key] = problems
        for args in problems:
            emit(*args)


_ORDER_CACHE: dict[tuple, list] = {}


def _check_reinforcement(obj: dict, emit) -> None:
    if "messages" not in obj:
        emit("missing_messages", "messages", "no \"messages\" list")
        return
    tools = _check_tools(obj, "", emit)
    _check_messages(obj["messages"], "messages", RL_ROLES, emit, tools, None)


def _check_preference(obj: dict, emit) -> None:
    output_spelling = {"preferred_output", "non_preferred_output"} & obj.keys()
    completion_spelling = {"preferred_completion", "non_preferred_completion"} & obj.keys()
    if output_spelling and completion_spelling:
        emit("conflicting_keys", sorted(completion_spelling)[-1],
             f"both {' and '.join(sorted(output_spelling | completion_spelling))} are present")
    suffix = "completion" if completion_spelling and not output_spelling else "output"
    for key in obj:
        if key not in PREFERENCE_KEYS:
            emit("unrecognized_key", key, f"{key!r} is not part of the preference training format and is ignored")
    inp = obj.get("input")
    tools = None
    if inp is None:
        emit("missing_input", "input", "no \"input\" with the prompt messages")
    elif not isinstance(inp, dict):
        emit("invalid_type", "input", f"must be an object with \"messages\", got {json_kind(inp)}")
    elif "messages" not in inp:
        emit("missing_messages", "input.messages", "no \"messages\" list in \"input\"")
    else:
        tools = _check_tools(inp, "input.", emit)
        _check_messages(inp["messages"], "input.messages", CHAT_ROLES, emit, tools, None)
    replies = []
    for key, code in ((f"preferred_{suffix}", "missing_preferred_output"),
                      (f"non_preferred_{suffix}", "missing_non_preferred_output")):
        value = obj.get(key)
        if value is None:
            emit(code, key, f"no \"{key}\"")
        elif not isinstance(value, list) or len(value) != 1:
            emit("invalid_preferred_output", key,
                 f"must be a list with exactly one assistant message, got {json_kind(value) if not isinstance(value, list) else f'{len(value)} items'}")
        elif not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            emit("invalid_preferred_output", f"{key}[0].role", "the reply must be an assistant message")
        else:
            _check_messages(value, key, ("assistant",), emit, tools, None, weight_ok=False)
            replies.append(value[0].get("content"))
    if len(replies) == 2 and replies[0] == replies[1]:
        emit("identical_preference", f"non_preferred_{suffix}", "the preferred and non-preferred replies are identical")


def _check_tools(container: dict, prefix: str, emit) -> set | None:
    """Names of the tools defined (None when there is no "tools" key)."""
    tools = container.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        emit("invalid_tools", prefix + "tools", f"must be a list of tools, got {json_kind(tools)}")
        return set()
    names = set()
    for i, tool in enumerate(tools):
        at = f"{prefix}tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            emit("invalid_tools", at, "each tool is {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}")
            continue
        fn = tool["function"]
        name = fn.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.match(name):
            emit("invalid_tools", at + ".function.name", f"function name must be 1-64 of a-z, A-Z, 0-9, _ or -, got {name!r}")
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            emit("invalid_tools", at + ".function.parameters", f"must be a JSON Schema object, got {json_kind(fn['parameters'])}")
        if isinstance(name, str):
            names.add(name)
    return names


def _check_functions(obj: dict, emit) -> set | None:
    functions = obj.get("functions")
    if functions is None:
        return None
    if not isinstance(functions, list) or not 1 <= len(functions) <= 128:
        emit("invalid_tools", "functions", "must be a list of 1 to 128 function definitions")
        return set()
    names = set()
    for i, fn in enumerate(functions):
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not FUNCTION_NAME.match(fn["name"]):
            emit("invalid_tools", f"functions[{i}].name", "each function needs a name of 1-64 of a-z, A-Z, 0-9, _ or -")
            continue
        names.add(fn["name"])
    return names


def _check_messages(messages, at: str, allowed_roles, emit, tools, functions, weight_ok=True) -> list | None:
    """Check each message; return the list of roles (None when `messages` is not a list)."""
    if not isinstance(messages, list):
        emit("invalid_type", at, f"must be a list of messages, got {json_kind(messages)}")
        return None
    if not messages:
        emit("empty_messages", at, "the list of messages is empty")
        return None
    roles, call_ids = [], set()
    plain = _PLAIN_FOR.get(allowed_roles) or _PLAIN_ROLES.intersection(allowed_roles)
    for i, message in enumerate(messages):
        if type(message) is dict and len(message) == 2:  # fast path: {role, content} with a string content
            role, content = message.get("role"), message.get("content")
            if type(content) is str and type(role) is str and role in plain:
                roles.append(role)
                if not content or content.isspace() or "<|" in content:
                    _check_text(content, f"{at}[{i}]", emit)
                continue
        path = f"{at}[{i}]"
        if not isinstance(message, dict):
            emit("message_not_object", path, f"must be an object, got {json_kind(message)}")
            roles.append(None)
            continue
        role = message.get("role")
        if role is None:
            roles.append(None)
            emit("missing_role", path + ".role", "the message has no role")
            continue
        if not isinstance(role, str):
            roles.append(None)
            emit("unknown_role", path + ".role", f"role must be a string, got {json_kind(role)}")
            continue
        roles.append(role)
        if role not in allowed_roles:
            hint = {"developer": " (use \"system\" in supervised and preference files)",
                    "system": " (use \"developer\" in reinforcement files)"}.get(role, "")
            emit("unknown_role", path + ".role", f"role {role!r} is not one of {', '.join(allowed_roles)}{hint}")
            continue
        allowed_keys = MESSAGE_KEYS[role] if weight_ok or role != "assistant" else MESSAGE_KEYS[role] - {"weight"}
        if not message.keys() <= allowed_keys:
            for key in [k for k in message if k not in allowed_keys]:
                if key == "weight":
                    emit("weight_not_on_assistant", path + ".weight", f"a {role} message cannot have a weight"
                         if role != "assistant" else "preference replies take no weight")
                else:
                    emit("unrecognized_message_key", f"{path}.{key}", f"{key!r} is not a key of a {role} message")
        _check_role_fields(message, role, path, emit, tools, functions, call_ids, weight_ok)
    return roles


def _check_role_fields(message: dict, role: str, path: str, emit, tools, functions, call_ids, weight_ok) -> None:
    """What a message of a known, allowed role must hold besides its keys: name, content, calls."""
    if "name" in message and not isinstance(message["name"], str):
        emit("invalid_type", path + ".name", f"must be a string, got {json_kind(message['name'])}")
    if role == "assistant":
        _check_assistant(message, path, emit, tools, functions, call_ids, weight_ok)
    elif role == "function" and not isinstance(message.get("name"), str):
        emit("missing_function_name", path + ".name", "a function message needs the \"name\" of the function")
        _check_content(message, role, path, emit)
    elif role == "tool":
        tcid = message.get("tool_call_id")
        if not isinstance(tcid, str):
            emit("missing_tool_call_id", path + ".tool_call_id", "a tool message needs a string tool_call_id")
        elif call_ids and tcid not in call_ids:
            emit("unknown_tool_call_id", path + ".tool_call_id", f"no earlier tool call has id {tcid!r}")
        _check_content(message, role, path, emit)
    else:
        _check_content(message, role, path, emit)


def _check_assistant(message, path, emit, tools, functions, call_ids, weight_ok) -> None:
    if weight_ok and "weight" in message:
        weight = message["weight"]
        if type(weight) is not int or weight not in (0, 1):
            emit("invalid_weight", path + ".weight", f"weight must be 0 or 1, got {weight!r}")
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list) or not calls:
            emit("invalid_tool_call", path + ".tool_calls", "must be a non-empty list of tool calls")
        else:
            if tools is None:
                emit("tool_calls_without_tools", path + ".tool_calls", "the assistant calls tools but the example has no \"tools\"")
            for j, call in enumerate(calls):
                _check_tool_call(call, f"{path}.tool_calls[{j}]", emit, tools, call_ids)
    fc = message.get("function_call")
    if fc is not None:
        if not isinstance(fc, dict) or not isinstance(fc.get("name"), str) or not isinstance(fc.get("arguments"), str):
            emit("invalid_tool_call", path + ".function_call", "must be {\"name\": \"...\", \"arguments\": \"<JSON string>\"}")
        elif functions is None:
            emit("function_call_without_functions", path + ".function_call",
                 "the assistant calls a function but the example has no \"functions\"")
        elif fc["name"] not in functions:
            emit("unknown_tool", path + ".function_call.name", f"function {fc['name']!r} is not in \"functions\"")
    if message.get("content") is None and (calls or fc):
        return  # a pure tool/function call carries no text
    _check_content(message, "assistant", path, emit)


def _check_tool_call(call, at, emit, tools, call_ids) -> None:
    if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(call.get("function"), dict):
        emit("invalid_tool_call", at, "each tool call is {\"id\": ..., \"type\": \"function\", \"function\": {\"name\": ..., \"arguments\": ...}}")
        return
    if not isinstance(call.get("id"), str):
        emit("invalid_tool_call", at + ".id", "a tool call needs a string id")
    else:
        call_ids.add(call["id"])
    fn = call["function"]
    if not isinstance(fn.get("name"), str):
        emit("invalid_tool_call", at + ".function.name", "the called function needs a name")
    elif tools and fn["name"] not in tools:
        emit("unknown_tool", at + ".function.name", f"function {fn['name']!r} is not in the example's tools")
    if not isinstance(fn.get("arguments"), str):
        emit("invalid_tool_call", at + ".function.arguments",
             f"arguments must be a JSON-encoded string, got {json_kind(fn.get('arguments'))}")


def _check_content(message, role, path, emit) -> None:
    if "content" not in message or message["content"] is None:
        if role == "assistant" and message.get("refusal"):
            return
        emit("missing_content", path + ".content", f"the {role} message has no content")
        return
    content = message["content"]
    if isinstance(content, str):
        _check_text(content, path, emit)
    elif isinstance(content, list) and role != "function":
        if not content:
            emit("invalid_content", path + ".content", "an empty list of content parts")
        for k, part in enumerate(content):
            at = f"{path}.content[{k}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES[role]:
                emit("invalid_content", at + ".type",
                     f"{role} content parts must have type {' or '.join(PART_TYPES[role])}, got {kind!r}")
            elif kind in ("text", "refusal"):
                if not isinstance(part.get(kind), str):
                    emit("invalid_content", f"{at}.{kind}", f"a {kind} part needs a string \"{kind}\"")
                else:
                    _check_text(part[kind], at, emit, f".{kind}")
    else:
        emit("invalid_content", path + ".content", f"content must be a string or a list of content parts, got {json_kind(content)}")


def _check_text(text: str, at: str, emit, suffix: str = ".content") -> None:
    # The field path is built only when there is something to report: this runs per message.
    if not text:
        emit("empty_content", at + suffix, "the content is empty")
    elif text.isspace():
        emit("whitespace_content", at + suffix, "the content is only whitespace")
    elif "<|" in text:
        found = SPECIAL_TOKENS.search(text)
        if found:
            emit("special_token", at + suffix, f"contains the special token {found.group()} (at character {found.start()})")


def _check_order(roles: list, at: str, emit) -> None:
    if "assistant" not in roles:
        emit("missing_assistant_message", at, "no assistant message: there is nothing to train on")
        return
    first = next((i for i, r in enumerate(roles) if r != "system"), None)
    for i, role in enumerate(roles):
        if role == "system" and i > 0:
            emit("system_not_first", f"{at}[{i}].role", f"a system message at position {i}, after the conversation began")
        if i > 0 and role == roles[i - 1] and role in ("user", "assistant"):
            emit("consecutive_roles", f"{at}[{i}].role", f"two {role} messages in a row (positions {i - 1} and {i})")
    if first is not None and roles[first] == "assistant":
        emit("assistant_first", f"{at}[{first}].role", "the conversation starts with the assistant, before any user message")
    if roles[-1] != "assistant":
        emit("last_message_not_assistant", f"{at}[{len(roles) - 1}].role",
             f"the last message is {roles[-1]!r}; it is not trained on")
