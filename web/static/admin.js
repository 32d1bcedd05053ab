/* ollama2openai admin: shared helpers (CSRF-aware JSON calls, copy buttons, confirmations). */
"use strict";

(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* Call the admin JSON API; resolves to {ok, status, data} and never rejects. */
  async function api(method, url, body) {
    var opts = {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var resp;
    try {
      resp = await fetch(url, opts);
    } catch (err) {
      return { ok: false, status: 0, data: { error: { message: "The gateway did not answer (" + err.message + ")." } } };
    }
    var data = null;
    var text = await resp.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: { message: text.slice(0, 300) } }; }
    if (resp.status === 401 || (resp.redirected && resp.url.indexOf("/admin/login") >= 0)) {
      data = { error: { message: "Your session has ended. Log in again (your input is still here)." } };
    }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  /* The human message of an API error, whatever its exact shape. */
  function errorMessage(data, fallback) {
    if (!data) return fallback || "Request failed.";
    var err = data.error !== undefined ? data.error : data;
    if (typeof err === "string") return err;
    if (err && typeof err.message === "string") return err.message;
    if (typeof data.message === "string") return data.message;
    return fallback || "Request failed.";
  }

  /* The field an API error names (error.param / error.field / fields{}), if any. */
  function errorField(data) {
    if (!data) return null;
    var err = data.error && typeof data.error === "object" ? data.error : data;
    return err.param || err.field || null;
  }

  /* Clear error messages and red borders inside a container. */
  function clearErrors(root) {
    root.querySelectorAll("[data-error-for]").forEach(function (el) { el.textContent = ""; });
    root.querySelectorAll(".invalid").forEach(function (el) { el.classList.remove("invalid"); });
  }

  /* Show a message next to a field (the [data-error-for=name] element), or in the form's general slot. */
  function showError(root, field, message) {
    var slot = field ? root.querySelector('[data-error-for="' + CSS.escape(field) + '"]') : null;
    if (!slot) slot = root.querySelector('[data-error-for="_form"]');
    if (slot) slot.textContent = message;
    if (field) {
      var input = root.querySelector('[name="' + CSS.escape(field) + '"]');
      if (input) input.classList.add("invalid");
    }
    return slot;
  }

  /* Show an API error: next to the field(s) it names, and a summary in the form's general slot. */
  function showApiError(root, data, fallback, mapField) {
    var map = mapField || function (f) { return f; };
    var err = data && data.error && typeof data.error === "object" ? data.error : {};
    var msg = errorMessage(data, fallback);
    var fields = err.fields || {};
    Object.keys(fields).forEach(function (f) { showError(root, map(f), fields[f]); });
    var field = map(errorField(data));
    if (field) {
      showError(root, field, msg);
      showError(root, null, "Not saved: " + msg);
    } else {
      showError(root, null, msg);
    }
  }

  function copyText(text, button) {
    function done(ok) {
      if (!button) return;
      var label = button.getAttribute("data-label") || button.textContent;
      button.setAttribute("data-label", label);
      button.textContent = ok ? "Copied" : "Select and copy";
      setTimeout(function () { button.textContent = label; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
      return;
    }
    /* Plain http on a LAN has no clipboard API: fall back to a selected textarea. */
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "hidden-offscreen";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(ta);
    done(ok);
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (btn) {
      var target = document.querySelector(btn.getAttribute("data-copy"));
      if (target) copyText(target.textContent, btn);
    }
  });

  /* Forms and buttons with data-confirm ask before doing anything destructive. */
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  }, true);

  /* Forms that post to page handlers: disable the button once, so a double click cannot resubmit. */
  document.addEventListener("submit", function (ev) {
    if (ev.defaultPrevented) return;
    var btn = ev.target.querySelector("button[type=submit]");
    if (btn) setTimeout(function () { btn.disabled = true; }, 0);
  });

  window.Admin = {
    api: api,
    csrfToken: csrfToken,
    errorMessage: errorMessage,
    errorField: errorField,
    clearErrors: clearErrors,
    showError: showError,
    showApiError: showApiError,
    copyText: copyText,
  };
})();
