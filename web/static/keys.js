/* Keys page: create (secret shown once), edit, enable/disable, rotate, delete. */
"use strict";

(function () {
  var A = window.Admin;
  var POSITIVE = /^\d+$/;

  function field(form, name) { return form.querySelector('[name="' + name + '"]'); }

  function keyUrl(id) { return "/admin/api/keys/" + encodeURIComponent(id); }

  /* Read a key form; checks what can be checked here, the API checks the rest. */
  function readForm(form, forEdit) {
    var body = {}, errors = [];
    var name = field(form, "name").value.trim();
    if (!name) errors.push(["name", "Give the key a name."]);
    body.name = name;
    var models = [];
    form.querySelectorAll('input[name="models"]:checked').forEach(function (cb) { models.push(cb.value); });
    field(form, "patterns").value.split(",").forEach(function (p) {
      p = p.trim();
      if (p && models.indexOf(p) < 0) models.push(p);
    });
    if (!models.length) errors.push(["models", "Pick at least one model, or type a pattern such as qwen3*."]);
    body.models = models;
    ["rpm", "tpm", "max_concurrency"].forEach(function (f) {
      var v = field(form, f).value.trim();
      if (v === "") { if (forEdit) body[f] = null; return; }
      if (!POSITIVE.test(v) || parseInt(v, 10) < 1) { errors.push([f, "Enter a whole number of at least 1, or leave it empty."]); return; }
      body[f] = parseInt(v, 10);
    });
    var exp = field(form, "expires_at").value;
    if (exp) {
      var when = new Date(exp);
      if (isNaN(when.getTime())) errors.push(["expires_at", "Not a valid date and time."]);
      else if (!forEdit && when.getTime() <= Date.now()) errors.push(["expires_at", "Pick a time in the future."]);
      else body.expires_at = when.getTime() / 1000;
    } else if (forEdit) {
      body.expires_at = null;
    }
    body.notes = field(form, "notes").value;
    return { body: body, errors: errors };
  }

  function showApiError(form, res, fallback) {
    A.showApiError(form, res.data, fallback, function (f) {
      return f === "key" || f === "id" ? null : f;
    });
  }

  function baseUrl() { return document.getElementById("base-url").textContent.trim(); }

  function showSecret(secret, model) {
    var base = baseUrl();
    document.getElementById("secret-value").textContent = secret;
    document.getElementById("snippet-python").textContent =
      "from openai import OpenAI\n\n" +
      "client = OpenAI(base_url=\"" + base + "\", api_key=\"" + secret + "\")\n" +
      "reply = client.chat.completions.create(\n" +
      "    model=\"" + model + "\",\n" +
      "    messages=[{\"role\": \"user\", \"content\": \"Hello!\"}],\n" +
      ")\n" +
      "print(reply.choices[0].message.content)\n";
    document.getElementById("snippet-curl").textContent =
      "curl " + base + "/chat/completions \\\n" +
      "  -H \"Authorization: Bearer " + secret + "\" \\\n" +
      "  -H \"Content-Type: application/json\" \\\n" +
      "  -d '{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}'\n";
    var panel = document.getElementById("secret-panel");
    panel.hidden = false;
    panel.scrollIntoView({ block: "start" });
  }

  /* A model the key may use, for the snippets: the first exact name, else the page's first model. */
  function snippetModel(models) {
    for (var i = 0; i < models.length; i++) {
      if (models[i].indexOf("*") < 0 && models[i].indexOf("?") < 0) return models[i];
    }
    return document.getElementById("first-model").innerHTML.trim();
  }

  /* Expiry inputs are rendered in UTC; show them in the browser's local time instead. */
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  document.querySelectorAll("input[data-epoch]").forEach(function (input) {
    var d = new Date(parseFloat(input.getAttribute("data-epoch")) * 1000);
    if (isNaN(d.getTime())) return;
    input.value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  });

  var toggleNew = document.getElementById("new-key-toggle");
  var newCard = document.getElementById("new-key-card");
  toggleNew.addEventListener("click", function () {
    newCard.hidden = !newCard.hidden;
    toggleNew.setAttribute("aria-expanded", String(!newCard.hidden));
    if (!newCard.hidden) newCard.querySelector('[name="name"]').focus();
  });

  var newForm = document.getElementById("new-key-form");
  newForm.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    A.clearErrors(newForm);
    var read = readForm(newForm, false);
    if (read.errors.length) {
      read.errors.forEach(function (e) { A.showError(newForm, e[0], e[1]); });
      return;
    }
    if (!read.body.notes) delete read.body.notes;
    var btn = newForm.querySelector("button[type=submit]");
    btn.disabled = true;
    var res = await A.api("POST", "/admin/api/keys", read.body);
    btn.disabled = false;
    if (!res.ok || !res.data || !res.data.key) { showApiError(newForm, res, "Could not create the key."); return; }
    newForm.reset();
    newCard.hidden = true;
    showSecret(res.data.key, snippetModel(read.body.models));
  });

  document.getElementById("secret-done").addEventListener("click", function () {
    /* Drop the secret from the page before reloading the list. */
    document.getElementById("secret-value").textContent = "";
    window.location.reload();
  });

  document.querySelectorAll("form[data-key-form]").forEach(function (form) {
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      A.clearErrors(form);
      var read = readForm(form, true);
      if (read.errors.length) {
        read.errors.forEach(function (e) { A.showError(form, e[0], e[1]); });
        return;
      }
      var btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      var res = await A.api("PATCH", keyUrl(form.getAttribute("data-key-form")), read.body);
      btn.disabled = false;
      if (res.ok) { window.location.reload(); return; }
      showApiError(form, res, "Could not save the key.");
    });
  });

  function rowError(id, msg) {
    var slot = document.querySelector('[data-error-for="' + CSS.escape("row-" + id) + '"]');
    if (slot) slot.textContent = msg;
  }

  document.addEventListener("click", async function (ev) {
    var btn = ev.target.closest("[data-edit-key],[data-toggle-key],[data-rotate-key],[data-delete-key]");
    if (!btn) return;
    var res;
    if (btn.hasAttribute("data-edit-key")) {
      var id = btn.getAttribute("data-edit-key");
      var row = document.querySelector('tr[data-key-editor="' + CSS.escape(id) + '"]');
      row.hidden = !row.hidden;
      btn.setAttribute("aria-expanded", String(!row.hidden));
      return;
    }
    if (btn.hasAttribute("data-toggle-key")) {
      id = btn.getAttribute("data-toggle-key");
      btn.disabled = true;
      res = await A.api("PATCH", keyUrl(id), { enabled: btn.getAttribute("data-enabled") !== "true" });
      btn.disabled = false;
      if (res.ok) { window.location.reload(); return; }
      rowError(id, A.errorMessage(res.data, "Could not change the key."));
      return;
    }
    if (btn.hasAttribute("data-rotate-key")) {
      id = btn.getAttribute("data-rotate-key");
      if (!window.confirm("Rotate key '" + btn.getAttribute("data-name") + "'? A new secret is issued; the old one keeps working for the grace period set in Settings.")) return;
      btn.disabled = true;
      res = await A.api("POST", keyUrl(id) + "/rotate");
      btn.disabled = false;
      if (res.ok && res.data && res.data.key) { showSecret(res.data.key, snippetModel(res.data.models || [])); return; }
      rowError(id, A.errorMessage(res.data, "Could not rotate the key."));
      return;
    }
    id = btn.getAttribute("data-delete-key");
    if (!window.confirm("Delete key '" + btn.getAttribute("data-name") + "'? Apps using it stop working at once. This cannot be undone.")) return;
    btn.disabled = true;
    res = await A.api("DELETE", keyUrl(id));
    btn.disabled = false;
    if (res.ok) { window.location.href = "/admin/keys?notice=key_deleted"; return; }
    rowError(id, A.errorMessage(res.data, "Could not delete the key."));
  });
})();
