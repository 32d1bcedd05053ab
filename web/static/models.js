/* Models page: refresh, enable/disable, the overrides editor and the "try it" box. */
"use strict";

(function () {
  var A = window.Admin;

  function modelUrl(name) { return "/admin/api/models/" + encodeURIComponent(name); }

  function openEditor(name, open) {
    var row = document.querySelector('tr[data-editor-for="' + CSS.escape(name) + '"]');
    var btn = document.querySelector('button[data-edit-model="' + CSS.escape(name) + '"]');
    if (!row) return;
    row.hidden = open === undefined ? !row.hidden : !open;
    if (btn) btn.setAttribute("aria-expanded", String(!row.hidden));
  }

  document.addEventListener("click", async function (ev) {
    var edit = ev.target.closest("[data-edit-model]");
    if (edit) { openEditor(edit.getAttribute("data-edit-model")); return; }

    var toggle = ev.target.closest("[data-toggle-model]");
    if (toggle) {
      var name = toggle.getAttribute("data-toggle-model");
      var enable = toggle.getAttribute("data-enabled") !== "true";
      var slot = document.querySelector('[data-error-for="' + CSS.escape("toggle-" + name) + '"]');
      toggle.disabled = true;
      var res = await A.api("PATCH", modelUrl(name), { enabled: enable });
      toggle.disabled = false;
      if (res.ok) { window.location.reload(); return; }
      if (slot) slot.textContent = A.errorMessage(res.data, "Could not change the model.");
    }
  });

  var refresh = document.getElementById("refresh-models");
  if (refresh) {
    refresh.addEventListener("click", async function () {
      var status = document.getElementById("refresh-status");
      refresh.disabled = true;
      status.textContent = "Asking Ollama…";
      var res = await A.api("POST", "/admin/api/models/refresh");
      refresh.disabled = false;
      if (res.ok) { window.location.reload(); return; }
      status.textContent = A.errorMessage(res.data, "Refresh failed.");
    });
  }

  document.querySelectorAll("form[data-model-form]").forEach(function (form) {
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var name = form.getAttribute("data-model-form");
      A.clearErrors(form);
      var saved = form.querySelector("[data-saved]");
      saved.textContent = "";
      var values = window.Options.collect(form);
      if (values.errors.length) {
        values.errors.forEach(function (e) { A.showError(form, e[0], e[1]); });
        A.showError(form, null, "Fix the marked values; nothing was saved.");
        return;
      }
      var body = { overrides: values.overrides, enforce: values.enforce };
      /* reasoning_output is a model field of its own, not an Ollama option. */
      var modeRow = form.querySelector('tr[data-option="reasoning_output"]');
      if (modeRow && !modeRow.hasAttribute("data-locked")) {
        var mode = values.overrides.reasoning_output || values.enforce.reasoning_output || null;
        delete values.overrides.reasoning_output;
        delete values.enforce.reasoning_output;
        body.reasoning_output = mode;
      }
      var dn = form.querySelector('[name="display_name"]');
      if (dn && !dn.disabled) body.display_name = dn.value.trim() || null;
      var btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      var res = await A.api("PATCH", modelUrl(name), body);
      btn.disabled = false;
      if (res.ok) {
        window.location.hash = "edit=" + encodeURIComponent(name);
        window.location.reload();
        return;
      }
      /* Nothing typed is lost: the form stays as it is, with the message next to the field. */
      A.showApiError(form, res.data, "Saving failed.", window.Options.optionOf);
    });
  });

  /* After a save the page reloads with #edit=<model>: reopen that editor and say so. */
  var m = /^#edit=(.+)$/.exec(window.location.hash);
  if (m) {
    var name = decodeURIComponent(m[1]);
    openEditor(name, true);
    var form = document.querySelector('form[data-model-form="' + CSS.escape(name) + '"]');
    if (form) form.querySelector("[data-saved]").textContent = "Saved.";
  }

  var tryForm = document.getElementById("try-form");
  if (tryForm) {
    tryForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      A.clearErrors(tryForm);
      var btn = tryForm.querySelector("button[type=submit]");
      var meta = document.getElementById("try-meta");
      var body = { model: tryForm.querySelector('[name="model"]').value, prompt: tryForm.querySelector('[name="prompt"]').value };
      if (!body.model) { A.showError(tryForm, "model", "No enabled chat model to try."); return; }
      if (!body.prompt.trim()) { A.showError(tryForm, "prompt", "Type a prompt."); return; }
      btn.disabled = true;
      meta.textContent = "Waiting for the model…";
      var res = await A.api("POST", "/admin/try", body);
      btn.disabled = false;
      if (!res.ok) {
        meta.textContent = "";
        A.showApiError(tryForm, res.data, "The request failed.");
        return;
      }
      document.getElementById("try-result").hidden = false;
      document.getElementById("try-reasoning").textContent = res.data.reasoning || "(none)";
      document.getElementById("try-content").textContent = res.data.content || "(empty)";
      var u = res.data.usage || {};
      meta.textContent = (res.data.latency_ms != null ? Math.round(res.data.latency_ms) + " ms" : "") +
        (u.total_tokens != null ? " · " + u.total_tokens + " tokens" : "");
    });
  }
})();
