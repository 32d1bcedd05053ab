/* Settings page: save settings and global defaults, test the Ollama connection. */
"use strict";

(function () {
  var A = window.Admin;
  var form = document.getElementById("settings-form");
  var INT = /^\d+$/;

  /* Read the editable settings; returns {body, errors}. */
  function readSettings() {
    var body = {}, errors = [];
    form.querySelectorAll("[data-setting]").forEach(function (box) {
      var name = box.getAttribute("data-setting");
      var kind = box.getAttribute("data-kind");
      var input = box.querySelector('[name="' + CSS.escape(name) + '"]');
      if (!input || input.disabled) return;
      if (kind === "bool") { body[name] = input.checked; return; }
      var v = input.value.trim();
      if (kind === "int") {
        if (!INT.test(v)) { errors.push([name, "Enter a whole number (0 or more)."]); return; }
        body[name] = parseInt(v, 10);
        return;
      }
      if (kind === "url") {
        if (!/^https?:\/\/[^\s/]+/.test(v)) { errors.push([name, "Enter a URL such as http://localhost:11434."]); return; }
        body[name] = v.replace(/\/+$/, "");
        return;
      }
      body[name] = v;
    });
    var editor = document.getElementById("defaults-editor");
    if (!editor.hasAttribute("data-locked-all")) {
      var defaults = window.Options.collect(editor);
      defaults.errors.forEach(function (e) { errors.push(e); });
      body.defaults = defaults.overrides;
    }
    return { body: body, errors: errors };
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    A.clearErrors(form);
    var saved = document.getElementById("settings-saved");
    saved.textContent = "";
    var read = readSettings();
    if (read.errors.length) {
      read.errors.forEach(function (e) { A.showError(form, e[0], e[1]); });
      A.showError(form, null, "Fix the marked values; nothing was saved.");
      return;
    }
    var btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    var res = await A.api("PATCH", "/admin/api/settings", read.body);
    btn.disabled = false;
    if (res.ok) { window.location.href = "/admin/settings?notice=settings"; return; }
    A.showApiError(form, res.data, "Saving failed.", window.Options.optionOf);
  });

  var test = document.getElementById("test-ollama");
  test.addEventListener("click", async function () {
    var out = document.getElementById("test-result");
    var input = form.querySelector('[name="ollama_url"]');
    A.clearErrors(input.closest("[data-setting]"));
    var body = input.disabled ? {} : { ollama_url: input.value.trim().replace(/\/+$/, "") };
    test.disabled = true;
    out.className = "small";
    out.textContent = "Connecting…";
    var res = await A.api("POST", "/admin/api/settings/test-ollama", body);
    test.disabled = false;
    var d = res.data || {};
    if (res.ok && d.ok !== false) {
      out.className = "small badge-ok";
      var n = Array.isArray(d.models) ? d.models.length : d.model_count;
      out.textContent = "Connected" + (d.version ? " to Ollama " + d.version : "") +
        (n != null ? ", " + n + " models" : "") + (d.latency_ms != null ? " (" + Math.round(d.latency_ms) + " ms)" : "") + ".";
    } else {
      out.className = "small";
      out.textContent = "";
      A.showError(input.closest("[data-setting]"), "ollama_url", A.errorMessage(d, "Ollama did not answer."));
    }
  });
})();
