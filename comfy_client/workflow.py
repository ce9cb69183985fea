"""ComfyUI workflow formats: UI ("save") format <-> API format, and checks against node schemas.

Only the API format can be POSTed to ``/prompt``; the UI format is what the frontend saves and
what the template browser opens. Converting needs the node schemas (``GET /object_info``) because
UI files store widget values by position (docs.comfy.org, "workflow-api-format").

Standard library only.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "WorkflowError",
    "api_to_ui",
    "check_api_workflow",
    "main",
    "ui_to_api",
    "widget_slots",
]

#: Node types that live in the page only (text for the user): never part of the API format.
NOTE_TYPES = ("Note", "MarkdownNote")

#: Input types that the frontend shows as widgets (unless ``forceInput`` is set).
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


class WorkflowError(ValueError):
    """A workflow that does not fit the node schemas it is checked against."""


def _inputs_in_order(info: dict) -> list[tuple[str, Any, dict]]:
    """``(name, type, options)`` of a node's required then optional inputs, in schema order."""
    spec = info.get("input", {})
    order = info.get("input_order") or {k: list(spec.get(k, {})) for k in ("required", "optional")}
    result = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            entry = spec.get(section, {}).get(name)
            if entry is None:
                continue
            kind = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            result.append((name, kind, options))
    return result


def _is_widget(kind: Any, options: dict) -> bool:
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_slots(info: dict) -> list[tuple[str, int]]:
    """Widget inputs of a node in ``widgets_values`` order, with the extra values each adds.

    The frontend stores one value per widget, plus one for a "control after generate" widget
    (seeds) and one for an image-upload button.

    Args:
        info: one node's entry of ``/object_info``.

    Returns:
        ``[(input name, number of extra values that follow it), ...]``.

    >>> widget_slots({"input": {"required": {"image": [["a.png"], {"image_upload": True}],
    ...                                      "x": ["IMAGE", {}]}}})
    [('image', 1)]
    """
    slots = []
    for name, kind, options in _inputs_in_order(info):
        if _is_widget(kind, options):
            extra = int(bool(options.get("control_after_generate"))) + int(
                bool(options.get("image_upload")))
            slots.append((name, extra))
    return slots


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format.

    Args:
        ui: the saved workflow (``nodes``, ``links``, ...).
        object_info: ``GET /object_info`` (at least the node types the workflow uses).

    Returns:
        ``{node id: {"class_type", "inputs", "_meta": {"title"}}}`` with links as
        ``[source id, output index]``. Muted (mode 2) and bypassed (mode 4) nodes and notes
        (:data:`NOTE_TYPES`) are dropped.

    Raises:
        WorkflowError: an unknown node type, or widget values that do not fit the schema.
    """
    links = {link[0]: link for link in ui.get("links", [])}
    api: dict[str, dict] = {}
    for node in ui.get("nodes", []):
        if node.get("mode", 0) in (2, 4) or node["type"] in NOTE_TYPES:
            continue
        kind = node["type"]
        if kind not in object_info:
            raise WorkflowError(f"node {node['id']}: unknown node type {kind!r}")
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        slots = widget_slots(object_info[kind])
        needed = sum(1 + extra for _, extra in slots)
        if len(values) != needed:
            raise WorkflowError(f"node {node['id']} ({kind}): {len(values)} widget values, the "
                                f"schema has {needed} for {[name for name, _ in slots]}")
        position = 0
        for name, extra in slots:
            inputs[name] = values[position]
            position += 1 + extra
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                link = links[slot["link"]]
                inputs[slot["name"]] = [str(link[1]), int(link[2])]
        title = node.get("title") or object_info[kind].get("display_name") or kind
        api[str(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    return api


def check_api_workflow(api: dict, object_info: dict) -> list[str]:
    """Every way an API-format workflow disagrees with the node schemas (empty when none).

    Checks node types, input names, required inputs, links (source node, output index, type)
    and combo values (except upload combos such as ``LoadImage``'s file name).

    >>> check_api_workflow({"1": {"class_type": "Nope", "inputs": {}}}, {})
    ["node 1: unknown node type 'Nope'"]
    """
    problems = []
    for node_id, node in api.items():
        kind = node.get("class_type")
        info = object_info.get(kind)
        if info is None:
            problems.append(f"node {node_id}: unknown node type {kind!r}")
            continue
        declared = {name: (k, o) for name, k, o in _inputs_in_order(info)}
        required = info.get("input", {}).get("required", {})
        for name in required:
            if name not in node.get("inputs", {}):
                problems.append(f"node {node_id} ({kind}): required input {name!r} missing")
        for name, value in node.get("inputs", {}).items():
            if name not in declared:
                problems.append(f"node {node_id} ({kind}): no input named {name!r}")
                continue
            problems.extend(_check_value(api, object_info, node_id, kind, name, value,
                                         *declared[name]))
    return problems


def _check_value(api: dict, object_info: dict, node_id: str, kind: str, name: str, value: Any,
                 want: Any, options: dict) -> list[str]:
    """Problems with one input value (a link or a literal)."""
    where = f"node {node_id} ({kind}) input {name!r}"
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        source = api.get(str(value[0]))
        if source is None:
            return [f"{where}: links to missing node {value[0]}"]
        outputs = object_info.get(source.get("class_type"), {}).get("output", [])
        if not 0 <= value[1] < len(outputs):
            return [f"{where}: node {value[0]} has no output {value[1]}"]
        have = outputs[value[1]]
        want_type = "COMBO" if isinstance(want, list) else want
        if want_type != "*" and have != "*" and have != want_type:
            return [f"{where}: expects {want_type}, linked to a {have} output"]
        return []
    choices = want if isinstance(want, list) else options.get("options")
    if options.get("image_upload"):
        return []  # a file name that the user uploads or copies into ComfyUI's input folder
    if choices is not None and value not in choices:
        return [f"{where}: {value!r} is not one of its options"]
    return []


def api_to_ui(api: dict, object_info: dict, column_width: int = 360,
              row_height: int = 260) -> dict:
    """Lay out an API-format workflow as a UI-format workflow (version 0.4).

    Nodes are placed in columns by their distance from the graph's sources. The result opens in
    the ComfyUI frontend and converts back with :func:`ui_to_api` to ``api`` (titles included).

    Args:
        api: the API-format workflow (ids must be integers as strings).
        object_info: schemas of the node types it uses.
        column_width: horizontal spacing in canvas pixels.
        row_height: vertical spacing in canvas pixels.
    """
    depth = _depths(api)
    rows: dict[int, int] = {}
    nodes, links = [], []
    outgoing: dict[tuple[str, int], list[int]] = {}
    for target_id in sorted(api, key=int):
        for name, value in api[target_id]["inputs"].items():
            if _is_link(value):
                link_id = len(links) + 1
                links.append([link_id, int(value[0]), value[1], int(target_id), name])
                outgoing.setdefault((str(value[0]), value[1]), []).append(link_id)
    link_by_target = {(str(link[3]), link[4]): link for link in links}
    for order, node_id in enumerate(sorted(api, key=lambda n: (depth[n], int(n)))):
        node = api[node_id]
        info = object_info[node["class_type"]]
        column = depth[node_id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes.append(_ui_node(node_id, node, info, order, (column * column_width,
                                                          row * row_height),
                              link_by_target, outgoing))
    for link in links:
        target = api[str(link[3])]
        declared = {n: k for n, k, _ in _inputs_in_order(object_info[target["class_type"]])}
        slot_names = [s["name"] for s in nodes_by_id(nodes)[link[3]]["inputs"]]
        link[4] = slot_names.index(link[4])
        kind = declared[slot_names[link[4]]]
        link.append("COMBO" if isinstance(kind, list) else kind)
    return {
        "last_node_id": max(int(n) for n in api),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
        "version": 0.4,
    }


def nodes_by_id(nodes: list[dict]) -> dict[int, dict]:
    """Index UI nodes by id."""
    return {node["id"]: node for node in nodes}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _depths(api: dict) -> dict[str, int]:
    """Longest distance of every node from a node without linked inputs."""
    depth: dict[str, int] = {}

    def visit(node_id: str, trail: frozenset) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in trail:
            raise WorkflowError(f"node {node_id}: the graph has a cycle")
        sources = [str(v[0]) for v in api[node_id]["inputs"].values() if _is_link(v)]
        depth[node_id] = max((visit(s, trail | {node_id}) + 1 for s in sources), default=0)
        return depth[node_id]

    for node_id in api:
        visit(node_id, frozenset())
    return depth


def _ui_node(node_id: str, node: dict, info: dict, order: int, pos: tuple[int, int],
             link_by_target: dict, outgoing: dict) -> dict:
    """One UI node: linked inputs as slots, widgets in ``widgets_values`` order."""
    inputs, values = [], []
    widgets = dict(widget_slots(info))
    for name, kind, options in _inputs_in_order(info):
        link = link_by_target.get((node_id, name))
        if name in widgets:
            value = node["inputs"].get(name, options.get("default"))
            values.append(None if link else value)
            values.extend(["image"] * int(bool(options.get("image_upload"))))
            values.extend(["fixed"] * int(bool(options.get("control_after_generate"))))
        if link or name not in widgets:
            slot = {"name": name, "type": "COMBO" if isinstance(kind, list) else kind,
                    "link": link[0] if link else None}
            if name in widgets:
                slot["widget"] = {"name": name}
            inputs.append(slot)
    outputs = []
    for index, kind in enumerate(info.get("output", [])):
        names = info.get("output_name") or info.get("output", [])
        outputs.append({"name": names[index], "type": kind,
                        "links": outgoing.get((node_id, index), []), "slot_index": index})
    return {
        "id": int(node_id), "type": node["class_type"], "pos": list(pos), "size": [320, 200],
        "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
        "title": node.get("_meta", {}).get("title", info.get("display_name", node["class_type"])),
        "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m comfy_client.workflow {to-ui,to-api,check} WORKFLOW OBJECT_INFO [OUT]``.

    ``OBJECT_INFO`` is a saved ``/object_info`` answer (or a URL of a running ComfyUI).
    """
    import argparse
    import json
    import sys
    import urllib.request

    parser = argparse.ArgumentParser(prog="python -m comfy_client.workflow",
                                     description="Convert or check ComfyUI workflows.")
    parser.add_argument("command", choices=("to-ui", "to-api", "check"))
    parser.add_argument("workflow", help="workflow JSON file")
    parser.add_argument("object_info", help="saved /object_info JSON, or http://host:port")
    parser.add_argument("out", nargs="?", help="output file (default: stdout)")
    args = parser.parse_args(argv)
    if args.object_info.startswith(("http://", "https://")):
        with urllib.request.urlopen(args.object_info.rstrip("/") + "/object_info") as answer:
            info = json.loads(answer.read())
    else:
        with open(args.object_info, encoding="utf-8") as handle:
            info = json.load(handle)
    with open(args.workflow, encoding="utf-8") as handle:
        workflow = json.load(handle)
    if args.command == "check":
        api = ui_to_api(workflow, info) if "nodes" in workflow else workflow
        problems = check_api_workflow(api, info)
        print("\n".join(problems) or "ok")
        return 1 if problems else 0
    result = api_to_ui(workflow, info) if args.command == "to-ui" else ui_to_api(workflow, info)
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
