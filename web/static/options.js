/* The overrides editor: read and check what is typed, per option type, before anything is sent. */
"use strict";

(function () {
  var INT = /^[-+]?\d+$/;
  var FLOAT = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
  var DURATION = /^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
  var THINK = ["low", "medium", "high", "max"];
  var REASONING = ["reasoning_content", "reasoning", "both", "inline", "hidden"];

  /* Parse one typed value; returns {value} or {error} in plain words. */
  function parseValue(kind, raw) {
    var text = raw.trim();
    switch (kind) {
      case "int":
        if (!INT.test(text)) return { error: "Enter a whole number, e.g. 4096." };
        return { value: parseInt(text, 10) };
      case "float":
        if (!FLOAT.test(text)) return { error: "Enter a number, e.g. 0.7." };
        return { value: parseFloat(text) };
      case "bool":
        if (text !== "true" && text !== "false") return { error: "Choose true or false." };
        return { value: text === "true" };
      case "string[]":
        if (text.charAt(0) === "[") {
          var list;
          try { list = JSON.parse(text); } catch (e) { return { error: "Not a valid JSON list: " + e.message }; }
          if (!Array.isArray(list) || !list.every(function (s) { return typeof s === "string"; })) {
            return { error: "Use a JSON list of strings, e.g. [\"###\", \"END\"]." };
          }
          return { value: list };
        }
        return { value: [raw] };
      case "think":
        if (text === "true" || text === "false") return { value: text === "true" };
        if (THINK.indexOf(text) >= 0) return { value: text };
        return { error: "Choose true, false, low, medium, high or max." };
      case "duration":
        if (FLOAT.test(text)) return { value: parseFloat(text) };
        if (text === "0" || DURATION.test(text)) return { value: text };
        return { error: "Enter seconds (e.g. 300) or a duration such as 10m, 24h or -1m." };
      case "reasoning":
        if (REASONING.indexOf(text) >= 0) return { value: text };
        return { error: "Choose one of " + REASONING.join(", ") + "." };
      default:
        return { value: text };
    }
  }

  /* Collect an editor's editable values: {overrides, enforce, errors:[[name, msg]]}. */
  function collect(root) {
    var out = { overrides: {}, enforce: {}, errors: [] };
    root.querySelectorAll("tr[data-option]").forEach(function (row) {
      if (row.hasAttribute("data-locked")) return;
      var name = row.getAttribute("data-option");
      var input = row.querySelector('[name="' + CSS.escape(name) + '"]');
      if (!input || input.value.trim() === "") return;
      var parsed = parseValue(row.getAttribute("data-kind"), input.value);
      if (parsed.error) { out.errors.push([name, parsed.error]); return; }
      var mode = row.querySelector('[name="' + CSS.escape(name + "__mode") + '"]');
      (mode && mode.value === "enforce" ? out.enforce : out.overrides)[name] = parsed.value;
    });
    return out;
  }

  /* Check a value when the field is left; clear the message as soon as the value is fixed.
     Clearing on "input" (not on blur) keeps the layout still when the Save button is
     pressed right after fixing a value, so that click is not lost to a shifting page. */
  function check(ev, addErrors) {
    var row = ev.target.closest("tr[data-option]");
    if (!row || ev.target.name !== row.getAttribute("data-option")) return;
    var slot = row.querySelector("[data-error-for]");
    var value = ev.target.value.trim();
    var parsed = value === "" ? {} : parseValue(row.getAttribute("data-kind"), ev.target.value);
    if (!parsed.error) {
      ev.target.classList.remove("invalid");
      if (slot) slot.textContent = "";
    } else if (addErrors) {
      ev.target.classList.add("invalid");
      if (slot) slot.textContent = parsed.error;
    }
  }
  document.addEventListener("input", function (ev) { check(ev, false); });
  document.addEventListener("change", function (ev) { check(ev, true); });

  /* The option an API error names: "overrides.temperature" -> "temperature". */
  function optionOf(param) {
    if (!param) return null;
    return String(param).replace(/^(overrides|enforce|defaults|options)\./, "");
  }

  window.Options = { parseValue: parseValue, collect: collect, optionOf: optionOf };
})();
