// The portal's browser test (issue #16): Debian's chromium driven by playwright-core through
// the quickstart's portal steps as written, then twin edit, method invoke and C2D send against
// a connected device. Screenshots of each view go to $SCREENSHOTS (browser/run sets it).
//
// Environment (browser/run sets all of it): PORTAL_URL, CHROMIUM, PYTHON (a venv with
// azure-iot-device), OFFICIAL_SAMPLE_PY (the official provision_symmetric_key.py, vendored under
// browser/vendor/), ECHO_DEVICE_PY, SSL_CERT_FILE (the emulator CA), SCREENSHOTS.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const URL = env("PORTAL_URL");
const SHOTS = env("SCREENSHOTS");
mkdirSync(SHOTS, { recursive: true });

const REGISTRATION_ID = "symm-key-python-device-008";
const DEVICE_ID = "python-device-008";
const MODULE_ID = "portal-module";

let step = 0;
const passed = [];
async function check(name, fn) {
  step += 1;
  const started = Date.now();
  try {
    await fn();
  } catch (e) {
    await page.screenshot({ path: path.join(SHOTS, `failed-${step}.png`), fullPage: true }).catch(() => {});
    console.log(`portal-browser: not ok ${step} - ${name}`);
    throw e;
  }
  passed.push(name);
  console.log(`portal-browser: ok ${step} - ${name} (${Date.now() - started} ms)`);
}

/** A screenshot of the whole page, or with `{ fullPage: false }` of what the window shows. */
async function shot(page, name, { fullPage = true } = {}) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(cmd, args, extraEnv, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { out += d; });
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${out}`))));
  });
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: URL });
const page = await context.newPage();
const external = [];
page.on("request", (req) => { if (!req.url().startsWith(URL)) external.push(req.url()); });
page.on("dialog", (dialog) => dialog.accept());
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

let echo = null;
let moduleEcho = null;
try {
  let idScope;
  let host;
  await check("DPS overview shows the service endpoint, ID scope and connection strings", async () => {
    await page.goto(URL + "/");
    await page.getByRole("heading", { name: "DPS overview" }).waitFor();
    idScope = await page.locator('[data-field="ID Scope"]').textContent();
    host = await page.locator('[data-field="Service endpoint"]').textContent();
    assert.equal(idScope, "0ne00000A0A");
    assert.equal(host, "localhost");
    assert.ok(await page.getByText("HostName=localhost;SharedAccessKeyName=provisioningserviceowner").count());
    await shot(page, "01-overview");
  });

  await check("keyboard: the views are reachable with Tab and Enter", async () => {
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Individual enrollments" }).waitFor();
  });

  await check("add the individual enrollment: symmetric key, auto-generate keys", async () => {
    await page.goto(URL + "/#/enrollments");
    await page.getByRole("button", { name: "Add individual enrollment" }).click();
    await page.getByLabel("Mechanism").selectOption("symmetricKey");
    assert.ok(await page.getByLabel("Auto-generate keys").isChecked());
    await page.getByLabel("Registration ID").fill(REGISTRATION_ID);
    await page.getByLabel("IoT Hub Device ID").fill(DEVICE_ID);
    await shot(page, "02-add-enrollment");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Individual enrollments" }).waitFor();
    await page.getByRole("link", { name: REGISTRATION_ID }).waitFor();
    await shot(page, "03-enrollments");
  });

  let primaryKey;
  await check("open the enrollment and copy the generated primary key", async () => {
    await page.getByRole("link", { name: REGISTRATION_ID }).click();
    await page.getByRole("button", { name: "Copy primary key" }).click();
    primaryKey = await page.evaluate(async () => {
      try { return await navigator.clipboard.readText(); } catch (_) { return window.lastCopied; }
    });
    assert.match(primaryKey, /^[A-Za-z0-9+/]{86}==$/, "a 64-byte base64 key");
    assert.equal(primaryKey, await page.locator('[data-field="Primary key"]').textContent());
    assert.ok(!(await page.locator("main").textContent()).includes("null"), "nothing renders as null");
    await shot(page, "04-enrollment-keys");
  });

  await check("live telemetry view open, filtered to the device", async () => {
    await page.goto(`${URL}/#/telemetry?device=${DEVICE_ID}`);
    await page.getByRole("heading", { name: "Live telemetry" }).waitFor();
    assert.equal(await page.getByLabel("Filter by device ID").inputValue(), DEVICE_ID);
  });

  await check("run the official sample provision_symmetric_key.py with the copied key: assigned, 10 messages sent", async () => {
    // The quickstart's own step: the four variables it sets, then `python provision_symmetric_key.py`
    // (browser/vendor/azure-iot-sdk-python, unmodified). The sample exits 0 even when it is not
    // assigned, so its printed lines are what tells.
    const sample = env("OFFICIAL_SAMPLE_PY");
    const out = await run(env("PYTHON"), [path.basename(sample)], {
      PROVISIONING_HOST: host,
      PROVISIONING_IDSCOPE: idScope,
      PROVISIONING_REGISTRATION_ID: REGISTRATION_ID,
      PROVISIONING_SYMMETRIC_KEY: primaryKey,
    }, path.dirname(sample));
    const lines = out.split("\n").map((l) => l.trim());
    assert.ok(lines.includes("Will send telemetry from the provisioned device"), `the sample was not assigned:\n${out}`);
    // RegistrationState's str(): device ID, assigned hub, substatus, payload, one a line.
    const at = lines.indexOf("The complete registration result is");
    assert.deepEqual(lines.slice(at + 1, at + 4), [DEVICE_ID, host, "initialAssignment"], out);
    for (let i = 1; i <= 10; i += 1) assert.ok(lines.includes(`done sending message #${i}`), `message #${i} not sent:\n${out}`);
  });

  await check("the 10 messages arrived live in the telemetry view, with their message IDs", async () => {
    await page.waitForFunction(() => document.querySelector('[data-field="count"]')?.textContent === "10", null, { timeout: 15000 });
    const messages = page.locator(`article.message[data-device="${DEVICE_ID}"]`);
    assert.equal(await messages.count(), 10);
    const bodies = (await page.locator('article.message [data-field="body"]').allTextContents()).sort();
    assert.deepEqual(bodies, Array.from({ length: 10 }, (_, i) => `test wind speed ${i + 1}`).sort());
    // The sample sets msg.message_id = uuid.uuid4(): each arrives as the message's system property.
    const ids = new Set();
    for (const text of await page.locator('article.message [data-field="system-properties"]').allTextContents()) {
      const id = JSON.parse(text)["message-id"];
      assert.match(String(id), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, text);
      ids.add(id);
    }
    assert.equal(ids.size, 10);
    await shot(page, "05-telemetry");
    await page.getByRole("button", { name: "Pause" }).click();
    assert.equal(await page.getByRole("button", { name: "Resume" }).getAttribute("aria-pressed"), "true");
  });

  await check("devices view: python-device-008 is Enabled", async () => {
    await page.goto(URL + "/#/devices");
    const row = page.locator(`tr[data-device="${DEVICE_ID}"]`);
    await row.waitFor();
    assert.equal(await row.locator('[data-col="status"]').textContent(), "Enabled");
    await shot(page, "06-devices");
  });

  await check("registration records: assigned to localhost", async () => {
    await page.goto(URL + "/#/registrations");
    const row = page.locator("tr", { hasText: REGISTRATION_ID });
    await row.waitFor();
    assert.ok((await row.textContent()).includes("assigned"));
    await shot(page, "07-registrations");
  });

  /** Starts browser/echo_device.py with `extraEnv`; its `wait(kind, test, what)` waits for a line it printed. */
  const startEcho = (extraEnv) => {
    const proc = spawn(env("PYTHON"), [env("ECHO_DEVICE_PY")], {
      env: { ...process.env, DEVICE_HOST: "localhost", ...extraEnv },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const echoed = [];
    let echoLog = "";
    proc.stdout.on("data", (d) => {
      echoLog += d;
      for (const line of String(d).split("\n")) { try { echoed.push(JSON.parse(line)); } catch (_) { /* partial */ } }
    });
    proc.stderr.on("data", (d) => { echoLog += d; });
    const wait = async (kind, test, what) => {
      const deadline = Date.now() + 20000;
      while (Date.now() < deadline) {
        const found = echoed.find((e) => e.kind === kind && test(e));
        if (found) return found;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the echo client never reported ${what}; its output:\n${echoLog}`);
    };
    return { proc, wait };
  };

  // A device that stays connected, for the twin, method and C2D steps.
  const echoDevice = startEcho({ DEVICE_ID, DEVICE_KEY: primaryKey });
  echo = echoDevice.proc;
  const waitEcho = echoDevice.wait;
  await waitEcho("connected", () => true, "a connection");

  await check("device page: connected; edit the twin's tags and desired properties", async () => {
    await page.goto(`${URL}/#/devices/localhost/${DEVICE_ID}`);
    await page.getByRole("heading", { name: `Device ${DEVICE_ID}` }).waitFor();
    assert.ok(await page.getByText("Connected", { exact: true }).count());
    await page.getByLabel("Tags and desired properties (JSON merge patch)").fill(
      JSON.stringify({ tags: { room: "lab-1" }, properties: { desired: { telemetryInterval: 5 } } }, null, 2));
    await page.getByRole("button", { name: "Save twin" }).click();
    await waitEcho("desired", (e) => e.patch.telemetryInterval === 5, "the desired patch");
    await page.waitForFunction(() => document.querySelector('[data-field="reported"]')?.textContent.includes("telemetryInterval") || false, null, { timeout: 100 }).catch(() => {});
    await page.reload();
    await page.getByRole("heading", { name: `Device ${DEVICE_ID}` }).waitFor();
    assert.ok((await page.getByLabel("Tags and desired properties (JSON merge patch)").inputValue()).includes("lab-1"));
    await shot(page, "08-device-twin");
  });

  await check("twin ETag conflict is shown", async () => {
    // The twin changes behind the page's back (as another user would change it).
    await page.evaluate(async ([device]) => {
      await fetch(`/api/hubs/localhost/devices/${device}/twin`, {
        method: "PATCH", headers: { "Content-Type": "application/json", "X-Iotemu-Portal": "1" },
        body: JSON.stringify({ tags: { changedElsewhere: true } }),
      });
    }, [DEVICE_ID]);
    await page.getByLabel("Tags and desired properties (JSON merge patch)").fill('{"tags": {"room": "lab-2"}}');
    await page.getByRole("button", { name: "Save twin" }).click();
    await page.getByText(/Conflict: the twin changed/).waitFor();
    await shot(page, "09-twin-conflict");
  });

  await check("invoke a direct method and see the device's answer", async () => {
    await page.reload();
    await page.getByLabel("Method name").fill("reboot");
    await page.getByLabel("Payload (JSON)").fill('{"delay": 3}');
    await page.getByRole("button", { name: "Invoke method" }).click();
    const result = page.locator('[data-field="method-result"]');
    await page.waitForFunction(() => document.querySelector('[data-field="method-result"]')?.textContent.includes('"status"'), null, { timeout: 20000 });
    const answer = JSON.parse(await result.textContent());
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.payload, { echo: { delay: 3 }, method: "reboot" });
    await shot(page, "10-direct-method");
  });

  await check("send a cloud-to-device message with properties; the device receives it", async () => {
    await page.getByLabel("Message body").fill("hello from the portal");
    await page.getByLabel("Application properties").fill("color=blue\npriority=high");
    await page.getByLabel("Acknowledgement (feedback)").selectOption("full");
    await page.getByRole("button", { name: "Send message" }).click();
    await page.getByText(/Sent, message ID/).waitFor();
    const got = await waitEcho("c2d", (e) => e.body === "hello from the portal", "the C2D message");
    assert.equal(got.properties.color, "blue");
    assert.equal(got.properties.priority, "high");
    // The device completed it; with ack=full the hub records Success feedback.
    const sentId = (await page.getByText(/Sent, message ID/).textContent()).replace("Sent, message ID ", "");
    assert.equal(got.messageId, sentId);
    const deadline = Date.now() + 10000;
    while (!(await page.locator(`tr[data-feedback="${sentId}"]`).count()) && Date.now() < deadline) {
      await page.getByRole("button", { name: "Refresh delivery and feedback" }).click();
      await page.waitForTimeout(200);
    }
    assert.equal(await page.locator(`tr[data-feedback="${sentId}"] [data-col="status"]`).textContent(), "Success");
    await shot(page, "11-c2d");
  });

  await check("files view: a file the device uploads (upload_to_blob.py's calls) is listed and downloadable", async () => {
    // The sample's steps with the device's key; no MQTT connection, so the echo client stays.
    const upload = [
      "import asyncio, os",
      "from azure.iot.device.aio import IoTHubDeviceClient",
      "from azure.storage.blob import BlobClient",
      "async def main():",
      "    client = IoTHubDeviceClient.create_from_connection_string('HostName=localhost;DeviceId={};SharedAccessKey={}'.format(os.environ['DEVICE_ID'], os.environ['DEVICE_KEY']))",
      "    info = await client.get_storage_info_for_blob('portal-upload.txt')",
      "    url = 'https://{}/{}/{}{}'.format(info['hostName'], info['containerName'], info['blobName'], info['sasToken'])",
      "    BlobClient.from_blob_url(url).upload_blob(b'uploaded for the portal', overwrite=True)",
      "    await client.notify_blob_upload_status(info['correlationId'], True, 200, 'OK')",
      "    await client.shutdown()",
      "asyncio.run(main())",
    ].join("\n");
    await run(env("PYTHON"), ["-c", upload], { DEVICE_ID, DEVICE_KEY: primaryKey, REQUESTS_CA_BUNDLE: env("SSL_CERT_FILE") });
    await page.getByRole("link", { name: "Files" }).click();
    const row = page.locator(`tr[data-blob="fileuploads/${DEVICE_ID}/portal-upload.txt"]`);
    await row.waitFor();
    assert.equal(await row.locator('[data-col="size"]').textContent(), "23");
    const href = await row.getByRole("link").getAttribute("href");
    assert.equal(await page.evaluate(async (h) => (await fetch(h)).text(), href), "uploaded for the portal");
    await shot(page, "11b-files");
  });

  let moduleKey = "";
  await check("device page: add a module (SAS, generated keys) and open it", async () => {
    await page.goto(`${URL}/#/devices/localhost/${DEVICE_ID}`);
    await page.getByRole("heading", { name: `Device ${DEVICE_ID}` }).waitFor();
    await page.getByLabel("Module ID").fill(MODULE_ID);
    await page.getByRole("button", { name: "Add module" }).click();
    await page.locator(`tr[data-module="${MODULE_ID}"]`).waitFor();
    await page.getByRole("link", { name: MODULE_ID }).click();
    await page.getByRole("heading", { name: `Module ${MODULE_ID}` }).waitFor();
    moduleKey = await page.locator('[data-field="Primary key"]').textContent();
    assert.match(moduleKey, /^[A-Za-z0-9+/]{43}=$|^[A-Za-z0-9+/]{86}==$/);
  });

  // The module connects with the key the portal generated.
  const echoModule = startEcho({ DEVICE_ID, MODULE_ID, DEVICE_KEY: moduleKey });
  moduleEcho = echoModule.proc;
  await echoModule.wait("connected", () => true, "a module connection");

  await check("module page: edit the module twin; the module receives the desired patch", async () => {
    await page.reload();
    await page.getByRole("heading", { name: `Module ${MODULE_ID}` }).waitFor();
    await page.getByLabel("Tags and desired properties (JSON merge patch)").fill(
      JSON.stringify({ tags: { role: "sensor" }, properties: { desired: { sampleRate: 7 } } }, null, 2));
    await page.getByRole("button", { name: "Save twin" }).click();
    await echoModule.wait("desired", (e) => e.patch.sampleRate === 7, "the module's desired patch");
    await page.reload();
    await page.getByRole("heading", { name: `Module ${MODULE_ID}` }).waitFor();
    assert.ok((await page.getByLabel("Tags and desired properties (JSON merge patch)").inputValue()).includes("sensor"));
  });

  await check("module page: invoke a direct method on the module and see its answer", async () => {
    await page.getByLabel("Method name").fill("calibrate");
    await page.getByLabel("Payload (JSON)").fill('{"offset": 2}');
    await page.getByRole("button", { name: "Invoke method" }).click();
    await page.waitForFunction(() => document.querySelector('[data-field="method-result"]')?.textContent.includes('"status"'), null, { timeout: 20000 });
    const answer = JSON.parse(await page.locator('[data-field="method-result"]').textContent());
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.payload, { echo: { offset: 2 }, method: "calibrate" });
    await shot(page, "16-module");
  });

  moduleEcho.stdin.end();
  moduleEcho.kill("SIGTERM");
  moduleEcho = null;

  await check("module page: delete the module", async () => {
    await page.getByRole("button", { name: "Delete module" }).click();
    await page.getByRole("heading", { name: `Device ${DEVICE_ID}` }).waitFor();
    await page.getByText("No modules").waitFor();
  });

  // A module that authenticates with a self-signed certificate: the portal registers its
  // thumbprint, then it connects with the certificate and answers a method invoked from its page.
  const moduleCerts = path.join(env("WORK"), "module-certs");
  const X509_MODULE = "portal-x509-module";
  const made = await run(env("IOTEMU"), ["certs", "self-signed", "--registration-id", X509_MODULE, "--out-dir", moduleCerts]);
  const moduleThumbprint = /SHA-256 thumbprint:\s*([0-9A-F]{64})/.exec(made)?.[1];
  assert.ok(moduleThumbprint, made);

  await check("device page: add a module with X.509 self-signed authentication (its thumbprint) and one CA-signed", async () => {
    const addModule = async (id, type) => {
      await page.getByLabel("Module ID").fill(id);
      await page.getByLabel("Authentication type").selectOption(type);
      if (type === "selfSigned") await page.getByLabel("Primary thumbprint").fill(moduleThumbprint);
      await page.getByRole("button", { name: "Add module" }).click();
      await page.locator(`tr[data-module="${id}"]`).waitFor();
    };
    await addModule(X509_MODULE, "selfSigned");
    await addModule("portal-ca-module", "certificateAuthority");
    const auth = (id) => page.locator(`tr[data-module="${id}"] [data-col="auth"]`).textContent();
    assert.equal(await auth(X509_MODULE), "selfSigned");
    assert.equal(await auth("portal-ca-module"), "certificateAuthority");
  });

  const x509Echo = startEcho({ DEVICE_ID, MODULE_ID: X509_MODULE,
    CERT_FILE: path.join(moduleCerts, `${X509_MODULE}.pem`), KEY_FILE: path.join(moduleCerts, `${X509_MODULE}.key.pem`) });
  moduleEcho = x509Echo.proc;
  await x509Echo.wait("connected", () => true, "an X.509 module connection");

  await check("X.509 module page: thumbprint shown, connected with its certificate, a direct method answered", async () => {
    await page.getByRole("link", { name: X509_MODULE }).click();
    await page.getByRole("heading", { name: `Module ${X509_MODULE}` }).waitFor();
    assert.equal(await page.locator('[data-field="Primary thumbprint"]').textContent(), moduleThumbprint);
    assert.equal(await page.locator('[data-field="Connection state"]').textContent(), "Connected");
    await page.getByLabel("Method name").fill("identify");
    await page.getByLabel("Payload (JSON)").fill('{"blink": 3}');
    await page.getByRole("button", { name: "Invoke method" }).click();
    await page.waitForFunction(() => document.querySelector('[data-field="method-result"]')?.textContent.includes('"status"'), null, { timeout: 20000 });
    const answer = JSON.parse(await page.locator('[data-field="method-result"]').textContent());
    assert.deepEqual(answer, { status: 200, payload: { echo: { blink: 3 }, method: "identify" } });
    await shot(page, "18-module-x509");
  });

  moduleEcho.stdin.end();
  moduleEcho.kill("SIGTERM");
  moduleEcho = null;

  await check("delete the X.509 modules", async () => {
    await page.getByRole("button", { name: "Delete module" }).click();
    await page.getByRole("heading", { name: `Device ${DEVICE_ID}` }).waitFor();
    await page.getByRole("button", { name: "Delete module portal-ca-module" }).click();
    await page.getByText("No modules").waitFor();
  });

  echo.stdin.end();
  echo.kill("SIGTERM");
  echo = null;

  await check("DPS certificates: upload a root CA, generate the verification code, upload the proof, verified", async () => {
    const dir = path.join(env("WORK"), "certs");
    await run(env("IOTEMU"), ["certs", "root", "--out-dir", dir]);
    await page.goto(URL + "/#/certificates");
    const dps = page.getByRole("region", { name: "Certificates of Device Provisioning Service" });
    await dps.waitFor();
    await dps.getByLabel("Certificate name").fill("portal-root");
    await dps.getByLabel("Certificate (.pem or .cer): from a file").setInputFiles(path.join(dir, "root-ca.pem"));
    await page.waitForFunction(() => document.querySelector("textarea")?.value.includes("BEGIN CERTIFICATE"));
    await dps.getByRole("button", { name: "Save" }).click();
    const row = page.locator('tr[data-certificate="portal-root"]');
    await row.waitFor();
    assert.equal(await row.locator('[data-col="status"]').textContent(), "Unverified");
    await row.getByRole("button", { name: "Generate verification code" }).click();
    const code = page.locator('tr[data-certificate="portal-root"] [data-field="verification-code"]');
    await code.waitFor();
    const verificationCode = await code.textContent();
    await shot(page, "13-certificate-code");
    await run(env("IOTEMU"), ["certs", "verification", "--ca", path.join(dir, "root-ca.pem"), "--ca-key", path.join(dir, "root-ca.key.pem"),
      "--code", verificationCode, "--out", path.join(dir, "verification.pem")]);
    await page.locator('tr[data-certificate="portal-root"]').getByLabel("Verification certificate for portal-root: from a file")
      .setInputFiles(path.join(dir, "verification.pem"));
    await page.waitForFunction(() => [...document.querySelectorAll('tr[data-certificate="portal-root"] textarea')].some((t) => t.value.includes("BEGIN CERTIFICATE")));
    await page.locator('tr[data-certificate="portal-root"]').getByRole("button", { name: "Verify" }).click();
    await page.waitForFunction(() => document.querySelector('tr[data-certificate="portal-root"] [data-col="status"]')?.textContent === "Verified");
    await shot(page, "14-certificate-verified");
  });

  await check("enrollment groups: add a symmetric-key group with generated keys, view, delete", async () => {
    await page.goto(URL + "/#/groups");
    await page.getByRole("button", { name: "Add enrollment group" }).click();
    await page.getByLabel("Group name").fill("portal-group");
    await page.getByLabel("Allocation policy").selectOption("hashed");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("link", { name: "portal-group" }).click();
    assert.match(await page.locator('[data-field="Primary key"]').textContent(), /^[A-Za-z0-9+/]{86}==$/);
    await shot(page, "15-enrollment-group");
    await page.getByRole("button", { name: "Disable entry" }).click();
    await page.getByRole("button", { name: "Enable entry" }).waitFor();
    assert.equal(await page.locator('[data-field="Provisioning status"]').textContent(), "disabled");
    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("heading", { name: "Enrollment groups" }).waitFor();
    await page.getByText("None").waitFor();
  });

  await check("delete the enrollment as the quickstart's clean-up says: check it in the list, Delete at the top", async () => {
    await page.goto(`${URL}/#/enrollments`);
    await page.getByRole("checkbox", { name: `Select ${REGISTRATION_ID}` }).check();
    await page.getByRole("button", { name: "Delete selected" }).click();
    await page.getByText("None").waitFor();
    const left = await page.evaluate(async () => (await fetch("/api/enrollments")).json());
    assert.equal(left.length, 0);
  });

  await check("devices view: add X.509 self-signed and CA-signed devices, then delete them", async () => {
    await page.goto(URL + "/#/devices");
    const hub = page.getByRole("region", { name: "Devices of localhost" });
    await hub.waitFor();
    const add = async (id, type, thumbprint) => {
      await hub.getByRole("button", { name: "Add device" }).click();
      await hub.getByLabel("Device ID").fill(id);
      await hub.getByLabel("Authentication type").selectOption(type);
      if (thumbprint) await hub.getByLabel("Primary thumbprint").fill(thumbprint);
      await hub.getByRole("button", { name: "Save device" }).click();
      await page.locator(`tr[data-device="${id}"]`).waitFor();
    };
    await add("portal-x509", "selfSigned", "AB".repeat(32));
    await add("portal-ca", "certificateAuthority");
    const auth = (id) => page.locator(`tr[data-device="${id}"] [data-col="auth"]`).textContent();
    assert.equal(await auth("portal-x509"), "selfSigned");
    assert.equal(await auth("portal-ca"), "certificateAuthority");
    await shot(page, "17-x509-devices");
    for (const id of ["portal-x509", "portal-ca"]) {
      await page.getByRole("button", { name: `Delete device ${id}` }).click();
      await page.locator(`tr[data-device="${id}"]`).waitFor({ state: "detached" });
    }
  });

  await check("delete the device as the quickstart's clean-up says: check it in the list, Delete at the top", async () => {
    await page.goto(URL + "/#/devices");
    const hub = page.getByRole("region", { name: "Devices of localhost" });
    assert.ok(await hub.getByRole("button", { name: "Delete selected" }).isDisabled());
    await hub.getByRole("checkbox", { name: `Select ${DEVICE_ID}` }).check();
    await hub.getByRole("button", { name: "Delete selected" }).click();
    await page.getByText("No devices").waitFor();
    await shot(page, "12-cleaned-up");
  });

  await check("devices view pages 250 devices: 100 a page, next and previous, search across pages", async () => {
    // 250 devices through the portal's own API (what "Add device" sends), then the list.
    await page.evaluate(async () => {
      for (let i = 0; i < 250; i += 1) {
        const id = `fleet-${String(i).padStart(3, "0")}`;
        const res = await fetch(`/api/hubs/localhost/devices/${id}`, {
          method: "PUT", headers: { "Content-Type": "application/json", "X-Iotemu-Portal": "1" },
          body: JSON.stringify({ deviceId: id, status: "enabled", authentication: { type: "sas" } }),
        });
        if (!res.ok) throw new Error(`${id}: ${res.status}`);
      }
    });
    // Still on the devices view (the step before ended there): its Refresh reads the list again.
    const hub = page.getByRole("region", { name: "Devices of localhost" });
    await hub.getByRole("button", { name: "Refresh" }).click();
    const range = hub.locator('[data-field="range"]');
    await page.waitForFunction(() => document.querySelector('[data-field="range"]')?.textContent === "1–100 of 250");
    assert.equal(await hub.locator("tr[data-device]").count(), 100);
    assert.equal(await hub.locator("tr[data-device]").first().getAttribute("data-device"), "fleet-000");
    assert.ok(await hub.getByRole("button", { name: "Previous page" }).isDisabled());
    await hub.getByRole("button", { name: "Next page" }).click();
    await page.waitForFunction(() => document.querySelector('[data-field="range"]')?.textContent === "101–200 of 250");
    await page.getByRole("region", { name: "Devices of localhost" }).getByRole("button", { name: "Next page" }).click();
    await page.waitForFunction(() => document.querySelector('[data-field="range"]')?.textContent === "201–250 of 250");
    assert.equal(await hub.locator("tr[data-device]").count(), 50);
    assert.equal(await hub.locator("tr[data-device]").last().getAttribute("data-device"), "fleet-249");
    assert.ok(await hub.getByRole("button", { name: "Next page" }).isDisabled());
    await shot(page, "19-devices-paged", { fullPage: false });
    await hub.getByRole("button", { name: "Previous page" }).click();
    await page.waitForFunction(() => document.querySelector('[data-field="range"]')?.textContent === "101–200 of 250");
    assert.equal(await hub.locator("tr[data-device]").first().getAttribute("data-device"), "fleet-100");
    // The search is the server's: it finds devices on every page, then pages from the first.
    await hub.getByLabel("Search devices of localhost").fill("fleet-24");
    await page.waitForFunction(() => document.querySelector('[data-field="range"]')?.textContent === "1–10 of 10");
    assert.equal(await hub.locator("tr[data-device]").first().getAttribute("data-device"), "fleet-240");
    assert.equal(await range.textContent(), "1–10 of 10");
  });

  await check("faults view: add a rule through the form, see it listed with its hits, a bad rule's 400 shown, remove it", async () => {
    await page.getByRole("link", { name: "Faults" }).click();
    await page.getByRole("heading", { name: "Faults" }).waitFor();
    await page.getByText("No faults installed").waitFor();
    const form = page.getByRole("form", { name: "Add a fault" });
    await form.getByLabel("Operation").selectOption("hub.telemetry");
    await form.getByLabel(/device ID pattern/).fill("portal-fault-*");
    await form.getByLabel("Action").selectOption("drop-after");
    await form.getByLabel(/Let this many matching requests through first/).fill("2");
    await form.getByRole("button", { name: "Add fault" }).click();
    const row = page.locator("tr[data-id]").first();
    await row.waitFor();
    assert.match(await row.textContent(), /hub\.telemetry.*portal-fault-\*.*drop after the ack, after 2/);
    assert.equal(await row.locator('[data-field="hits"]').textContent(), "0");
    // The form built the control port's JSON rule exactly.
    const listed = await page.evaluate(async () => (await fetch("/api/faults")).json());
    assert.equal(listed.length, 1);
    assert.deepEqual(
      { ...listed[0], id: undefined },
      { id: undefined, operation: "hub.telemetry", deviceId: "portal-fault-*", action: { drop: { when: "afterAck" } }, after: 2, count: 1, hits: 0, remaining: 1 },
    );
    // A rule the server refuses (DPS faults can only refuse): its message is shown and nothing
    // is installed.
    await form.getByLabel("Operation").selectOption("dps.register");
    await form.getByLabel("Action").selectOption("stall");
    await form.getByRole("button", { name: "Add fault" }).click();
    await page.getByRole("alert").filter({ hasText: "can only refuse" }).waitFor();
    assert.equal(await page.locator("tr[data-id]").count(), 1);
    await shot(page, "20-faults");
    await page.getByRole("button", { name: `Remove fault ${listed[0].id}` }).click();
    await page.getByText("No faults installed").waitFor();
  });

  // Last but one: moving the clock expires what earlier checks left queued.
  await check("faults view: the clock section moves the emulator's clock ahead, credentials only when asked", async () => {
    const offset = page.locator('[data-field="offset"]');
    const credentialOffset = page.locator('[data-field="credentialOffset"]');
    assert.equal(await offset.textContent(), "0 s");
    const clock = page.getByRole("form", { name: "Advance the clock" });
    await clock.getByLabel(/Seconds to move the clock ahead/).fill("90");
    await clock.getByRole("button", { name: "Advance" }).click();
    await page.waitForFunction(() => document.querySelector('[data-field="offset"]')?.textContent === "90 s");
    assert.equal(await credentialOffset.textContent(), "0 s");
    await clock.getByLabel(/Seconds to move the clock ahead/).fill("10");
    await clock.getByLabel(/Also age connected clients/).check();
    await clock.getByRole("button", { name: "Advance" }).click();
    await page.waitForFunction(() => document.querySelector('[data-field="offset"]')?.textContent === "100 s");
    assert.equal(await credentialOffset.textContent(), "10 s");
    const reading = await page.evaluate(async () => (await fetch("/api/time")).json());
    assert.equal(reading.offsetSeconds, 100);
    assert.equal(reading.credentialOffsetSeconds, 10);
    // A step the server refuses: its message is shown and the clock stays.
    await clock.getByLabel(/Seconds to move the clock ahead/).fill("999999999999");
    await clock.getByRole("button", { name: "Advance" }).click();
    await page.getByRole("alert").filter({ hasText: "limit" }).waitFor();
    assert.equal((await page.evaluate(async () => (await fetch("/api/time")).json())).offsetSeconds, 100);
    await shot(page, "21-clock");
  });

  await check("no request left the emulator's origin; no script errors", async () => {
    assert.deepEqual(external, []);
    assert.deepEqual(errors, []);
  });
} finally {
  if (echo) echo.kill("SIGTERM");
  if (moduleEcho) moduleEcho.kill("SIGTERM");
  await browser.close();
}
console.log(`portal-browser: ${passed.length} steps passed; screenshots in ${SHOTS}`);
