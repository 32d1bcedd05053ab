"""The admin in a real browser: every admin task end to end, then screenshots of every page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openai
import pytest

from appkeys import USAGE
from tests.browser.conftest import DESKTOP, PHONE
from tests.conftest import MakeGateway
from tests.fake_ollama import FakeModel, FakeOllama

pytestmark = pytest.mark.browser

NEW_PASSWORD = "browser-tested-password"
# Chromium logs every 4xx/5xx fetch as a console error; expected ones are filtered out.
_EXPECTED_HTTP = re.compile(
    r"Failed to load resource: the server responded with a status of "
    r"(400|404|502)"
)


def base_of(client: Any) -> str:
    """The gateway's http://127.0.0.1:PORT."""
    return str(client.make_url("")).rstrip("/")


def assert_clean(page: Any, allow_http_errors: bool = False) -> None:
    """No console errors so far (CSP violations and script errors land there)."""
    errors = page.watch.take()
    if allow_http_errors:
        errors = [e for e in errors if not _EXPECTED_HTTP.search(e)]
    assert not errors, errors


async def log_in_and_change_password(page: Any, base: str) -> None:
    """Task 1: the first login with admin/admin must choose a new password."""
    await page.goto(base + "/admin")
    assert "/admin/login" in page.url
    await page.fill("#username", "admin")
    await page.fill("#password", "admin")
    await page.click("form button[type=submit]")
    await page.wait_for_url("**/admin/password")
    assert "Choose a new password" in await page.inner_text("h1")
    # A mismatch is refused next to its field.
    await page.fill("#current", "admin")
    await page.fill("#new", NEW_PASSWORD)
    await page.fill("#confirm", NEW_PASSWORD + "!")
    await page.click("form button[type=submit]")
    await page.wait_for_url("**/admin/password")
    assert "differ" in await page.inner_text('[data-error-for="confirm"]')
    assert_clean(page, allow_http_errors=True)  # the refused form answered 400, as it should
    await page.fill("#current", "admin")
    await page.fill("#new", NEW_PASSWORD)
    await page.fill("#confirm", NEW_PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_url("**/admin?notice=password")
    assert "Password changed." in await page.inner_text("main")


async def test_admin_tasks_end_to_end(
    make_gateway: MakeGateway, fake_ollama: FakeOllama, page: Any
) -> None:
    client = await make_gateway()
    base = base_of(client)

    # 1. Log in and change the default password.
    await log_in_and_change_password(page, base)
    assert_clean(page)

    # 2. Create a key with the model picker and read its secret, shown once.
    await page.goto(base + "/admin/keys")
    await page.fill("#new-name", "browser key")
    await page.check('#new-key-form input[name="models"][value="llama3.2:latest"]')
    await page.fill("#new-patterns", "qwen3*")
    await page.fill("#new-rpm", "abc")
    await page.click("#new-key-form button[type=submit]")
    assert "whole number" in await page.inner_text('#new-key-form [data-error-for="rpm"]')
    assert await page.input_value("#new-name") == "browser key"  # nothing typed was lost
    await page.fill("#new-rpm", "100")
    await page.click("#new-key-form button[type=submit]")
    await page.wait_for_selector("#secret-panel:not([hidden])")
    secret = (await page.inner_text("#secret-value")).strip()
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{32,}", secret)
    python_snippet = await page.inner_text("#snippet-python")
    assert f'api_key="{secret}"' in python_snippet and f'base_url="{base}/v1"' in python_snippet
    assert f"Bearer {secret}" in await page.inner_text("#snippet-curl")
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.click('#secret-panel button[data-copy="#secret-value"]')
    await page.wait_for_selector('#secret-panel button[data-copy="#secret-value"]:text("Copied")')
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await page.click("#secret-done")
    await page.wait_for_selector("#keys-table [data-key-row]")
    listed = await page.inner_text("#keys-table")
    assert "browser key" in listed and secret[:6] in listed and secret not in await page.content()
    assert_clean(page)

    # 3. Use that key from the openai SDK.
    sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=secret, max_retries=0)
    try:
        reply = await sdk.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "hi there"}]
        )
        assert reply.choices[0].message.content == "Echo: hi there"

        # 4. Set an override in the editor and see it arrive at Ollama.
        await page.goto(base + "/admin/models")
        await page.click('button[data-edit-model="qwen3:8b"]')
        editor = page.locator('form[data-model-form="qwen3:8b"]')
        await editor.locator('input[name="temperature"]').fill("warm")
        await editor.locator('input[name="top_k"]').fill("7")
        await editor.locator("button[type=submit]").click()
        assert "number" in await editor.locator('[data-error-for="temperature"]').inner_text()
        assert await editor.locator('input[name="top_k"]').input_value() == "7"
        await editor.locator('input[name="temperature"]').fill("0.15")
        await editor.locator('select[name="top_k__mode"]').select_option("enforce")
        await editor.locator("button[type=submit]").click()
        await page.wait_for_selector('form[data-model-form="qwen3:8b"] [data-saved]:text("Saved.")')
        await sdk.chat.completions.create(
            model="qwen3:8b", messages=[{"role": "user", "content": "x"}], extra_body={"top_k": 99}
        )
        options = fake_ollama.last("/api/chat")["options"]
        assert options["temperature"] == 0.15 and options["top_k"] == 7  # enforce beats request
        # The "try it" box goes through the same path and shows content and reasoning.
        await page.select_option("#try-model", "qwen3:8b")
        await page.fill("#try-prompt", "ping")
        await page.click("#try-form button[type=submit]")
        await page.wait_for_selector("#try-result:not([hidden])")
        assert await page.inner_text("#try-content") == "Echo: ping"
        assert await page.inner_text("#try-reasoning") == "Thinking about: ping"
        assert fake_ollama.last("/api/chat")["options"]["temperature"] == 0.15
        assert_clean(page)

        # 5. Disable a model and see /v1 refuse it.
        await page.click('button[data-toggle-model="llama3.2:latest"]')
        await page.wait_for_selector('tr[data-model-row="llama3.2:latest"].row-off')
        with pytest.raises(openai.APIStatusError) as refused:
            await sdk.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.status_code == 404  # as OpenAI answers for an unknown model
        assert "llama3.2" in str(refused.value.message)
        assert_clean(page)

        # 6. Delete the key (with confirmation) and see it refused.
        await page.goto(base + "/admin/keys")
        await page.click("#keys-table button[data-delete-key]")
        await page.wait_for_url("**/admin/keys?notice=key_deleted")
        assert "Delete key 'browser key'?" in page.dialogs[-1]
        assert "browser key" not in await page.inner_text("#keys-table")
        with pytest.raises(openai.AuthenticationError):
            await sdk.chat.completions.create(
                model="qwen3:8b", messages=[{"role": "user", "content": "hi"}]
            )
        assert_clean(page)
    finally:
        await sdk.close()


async def test_key_edit_disable_rotate_and_model_refresh(
    make_gateway: MakeGateway, fake_ollama: FakeOllama, page: Any
) -> None:
    client = await make_gateway()
    base = base_of(client)
    await log_in_and_change_password(page, base)
    await page.goto(base + "/admin/keys")
    old = await page.evaluate("""async () => (await Admin.api("POST", "/admin/api/keys",
        {name: "ci", models: ["llama3.2:latest"]})).data.key""")
    await page.reload()
    sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=old, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    try:
        # Edit: rename, add a limit and a pattern; the list shows the new values.
        await page.click("#keys-table button[data-edit-key]")
        form = page.locator("form[data-key-form]")
        await form.locator('input[name="name"]').fill("ci-runner")
        await form.locator('input[name="rpm"]').fill("5")
        await form.locator('input[name="patterns"]').fill("qwen3*")
        await form.locator("button[type=submit]").click()
        await page.wait_for_selector("#keys-table:has-text('ci-runner')")
        row = await page.inner_text("#keys-table [data-key-row]")
        assert "5 req/min" in row and "qwen3*" in row
        assert (await sdk.chat.completions.create(model="qwen3:8b", messages=messages)).choices

        # Disable: refused with 401 at once; enable: works again.
        await page.click("#keys-table button[data-toggle-key]")
        await page.wait_for_selector("#keys-table .badge-off:has-text('disabled')")
        with pytest.raises(openai.AuthenticationError) as refused:
            await sdk.chat.completions.create(model="llama3.2", messages=messages)
        assert "disabled" in str(refused.value.message)
        await page.click("#keys-table button[data-toggle-key]")
        await page.wait_for_selector("#keys-table .badge-ok:has-text('active')")
        await sdk.chat.completions.create(model="llama3.2", messages=messages)

        # Rotate (after a confirmation): a new secret, shown once; the old one has grace time.
        await page.click("#keys-table button[data-rotate-key]")
        await page.wait_for_selector("#secret-panel:not([hidden])")
        assert "Rotate key 'ci-runner'?" in page.dialogs[-1]
        new = (await page.inner_text("#secret-value")).strip()
        assert new.startswith("sk-") and new != old
        rotated = openai.AsyncOpenAI(base_url=base + "/v1", api_key=new, max_retries=0)
        try:
            await rotated.chat.completions.create(model="llama3.2", messages=messages)
        finally:
            await rotated.close()
        await sdk.chat.completions.create(model="llama3.2", messages=messages)

        # Expiry: a time in the past makes the key expired at once.
        await page.click("#secret-done")
        await page.wait_for_selector("#keys-table [data-key-row]")
        await page.click("#keys-table button[data-edit-key]")
        await page.locator('form[data-key-form] input[name="expires_at"]').fill("2020-01-01T10:00")
        await page.locator("form[data-key-form] button[type=submit]").click()
        await page.wait_for_selector("#keys-table .badge-off:has-text('expired')")
        with pytest.raises(openai.AuthenticationError) as refused:
            await sdk.chat.completions.create(model="llama3.2", messages=messages)
        assert "expired" in str(refused.value.message)
    finally:
        await sdk.close()

    # Refresh: a model pulled into Ollama since shows up.
    fake_ollama.models.append(
        FakeModel(
            "mistral:7b", ["completion", "tools"], 32768, family="mistral", parameter_size="7.2B"
        )
    )
    await page.goto(base + "/admin/models")
    assert await page.locator('tr[data-model-row="mistral:7b"]').count() == 0
    await page.click("#refresh-models")
    await page.wait_for_selector('tr[data-model-row="mistral:7b"]')
    assert "32,768" in await page.inner_text('tr[data-model-row="mistral:7b"]')
    assert_clean(page)


async def test_api_errors_show_next_to_field(make_gateway: MakeGateway, page: Any) -> None:
    client = await make_gateway(ollama_url="http://127.0.0.1:9")  # nothing listens there
    base = base_of(client)
    await log_in_and_change_password(page, base)
    # An unreachable Ollama in "test connection" is explained next to the URL field.
    await page.goto(base + "/admin/settings")
    await page.click("#test-ollama")
    slot = page.locator('[data-setting="ollama_url"] [data-error-for="ollama_url"]')
    await slot.filter(has_text="Cannot reach Ollama").wait_for()
    # A wrong value typed in the defaults editor is caught before sending and stays there.
    await page.fill("#def-num_ctx", "lots")
    await page.click("#settings-form button[type=submit]")
    assert "whole number" in await page.inner_text('#defaults-editor [data-error-for="num_ctx"]')
    assert await page.input_value("#def-num_ctx") == "lots"
    await page.fill("#def-num_ctx", "4096")
    await page.click("#settings-form button[type=submit]")
    await page.wait_for_url("**/admin/settings?notice=settings")
    assert await page.input_value("#def-num_ctx") == "4096"
    # The API refuses a duplicate key name: the message sits next to the name, input kept.
    await page.goto(base + "/admin/keys")
    for attempt in range(2):
        if attempt:
            await page.click("#new-key-toggle")
        await page.fill("#new-name", "twin")
        await page.fill("#new-patterns", "llama*")
        await page.fill("#new-notes", "typed text survives")
        await page.click("#new-key-form button[type=submit]")
        if not attempt:
            await page.wait_for_selector("#secret-panel:not([hidden])")
            await page.click("#secret-done")
            await page.wait_for_selector("#keys-table [data-key-row]")
    name_error = page.locator('#new-key-form [data-error-for="name"]')
    await name_error.filter(has_text="already exists").wait_for()
    assert await page.input_value("#new-notes") == "typed text survives"
    assert await page.input_value("#new-patterns") == "llama*"
    assert_clean(page, allow_http_errors=True)


async def _shoot(page: Any, folder: Path, name: str, focus: str | None = None) -> None:
    """Screenshots at desktop width (whole page) and phone width (the screen a phone shows,
    scrolled to `focus` when given), written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(size)
        phone = label == "phone"
        if phone and focus:
            await page.locator(focus).first.scroll_into_view_if_needed()
        await page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=not phone)
        if phone:
            # Nothing may stick out sideways on a phone: wide tables scroll inside their box.
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name}: page is {overflow}px wider than the phone"
    await page.set_viewport_size(DESKTOP)


async def test_screenshots_of_every_page(
    make_gateway: MakeGateway, page: Any, screenshots_dir: Path
) -> None:
    client = await make_gateway()
    base = base_of(client)
    await page.goto(base + "/admin/login")
    await _shoot(page, screenshots_dir, "login")
    await page.fill("#username", "admin")
    await page.fill("#password", "admin")
    await page.click("form button[type=submit]")
    await page.wait_for_url("**/admin/password")
    await _shoot(page, screenshots_dir, "password")
    await page.fill("#current", "admin")
    await page.fill("#new", NEW_PASSWORD)
    await page.fill("#confirm", NEW_PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_url("**/admin?notice=password")

    # Some data, made through the admin API from the page itself (session + CSRF header).
    made = await page.evaluate("""async () => {
        const a = await Admin.api("POST", "/admin/api/keys",
            {name: "open-webui", models: ["*"], rpm: 60, notes: "Living room server"});
        await Admin.api("POST", "/admin/api/keys",
            {name: "laptop", models: ["llama3.2:latest", "qwen3*"], tpm: 20000});
        await Admin.api("PATCH", "/admin/api/models/" + encodeURIComponent("qwen3:8b"),
            {display_name: "qwen-fast", overrides: {temperature: 0.6, num_ctx: 8192},
             enforce: {think: "low"}});
        return a.data.key;
    }""")
    sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=made, max_retries=0)
    try:
        for text in ("hello", "what is 2+2?", "tell me a joke"):
            await sdk.chat.completions.create(
                model="qwen-fast", messages=[{"role": "user", "content": text}]
            )
    finally:
        await sdk.close()
    await client.app[USAGE].flush()  # usage rows are written in batches; show them now

    for path, name in (
        ("/admin", "dashboard"),
        ("/admin/models", "models"),
        ("/admin/keys", "keys"),
        ("/admin/settings", "settings"),
        ("/admin/usage", "usage"),
    ):
        resp = await page.goto(base + path)
        if resp.status == 404 and name == "usage":
            continue  # the usage page belongs to another module; shot once it exists
        assert resp.status == 200, (path, resp.status)
        await _shoot(page, screenshots_dir, name)
    await page.goto(base + "/admin/models")
    await page.click('button[data-edit-model="qwen3:8b"]')
    await _shoot(
        page, screenshots_dir, "models-editor", focus='form[data-model-form="qwen3:8b"] h3'
    )
    await page.goto(base + "/admin/keys")
    await page.click("#new-key-toggle")
    await page.fill("#new-name", "phone")
    await page.check('#new-key-form input[name="models"][value="*"]')
    await page.click("#new-key-form button[type=submit]")
    await page.wait_for_selector("#secret-panel:not([hidden])")
    await _shoot(page, screenshots_dir, "key-created")
    assert_clean(page)
