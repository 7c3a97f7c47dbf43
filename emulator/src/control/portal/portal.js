// The iotemu local portal: a single page over the control port's /api/ routes and its
// /telemetry/stream server-sent events. Vanilla JavaScript, no build step, no other origin.
"use strict";

// ----- helpers -----

/** Builds an element; attributes starting with "on" are listeners, text children are escaped. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
/** A labelled form field. */
function field(label, input, inline) {
  const id = input.id || `f${++uid}`;
  input.id = id;
  return h("div", { class: inline ? "field inline" : "field" },
    inline ? [input, h("label", { for: id }, label)] : [h("label", { for: id }, label), input]);
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.classList.add("shown");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("shown"), 2500);
}

/** Copies `value`; the copied text is also kept in window.lastCopied for tests without a clipboard. */
async function copy(value, what) {
  window.lastCopied = value;
  try { await navigator.clipboard.writeText(value); } catch (_) { /* no clipboard permission */ }
  toast(`Copied ${what}`);
}

function copyButton(value, what) {
  return h("button", { type: "button", "aria-label": `Copy ${what}`, onclick: () => copy(value, what) }, "Copy");
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? `${status}: ${body.message}${body.errorCode ? ` (${body.errorCode})` : ""}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Calls the portal API; writes carry the header the control port requires of them. */
async function api(method, path, body, ifMatch) {
  const headers = {};
  if (method !== "GET") headers["X-Iotemu-Portal"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  const res = await fetch(`/api/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = { message: text }; }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

const enc = encodeURIComponent;
const view = () => document.getElementById("view");

function render(title, ...content) {
  const v = view();
  v.replaceChildren(h("h2", {}, title), ...content.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  document.title = `${title} · iotemu portal`;
}

function showError(e) {
  const v = view();
  v.append(h("p", { class: "error", role: "alert" }, String(e.message || e)));
}

async function guarded(fn) {
  try { await fn(); } catch (e) { showError(e); }
}

function jsonText(value) { return JSON.stringify(value, null, 2); }

let overviewCache = null;
async function overview() {
  if (!overviewCache) overviewCache = await api("GET", "overview");
  return overviewCache;
}

// ----- paged lists -----
// The lists (enrollments, groups, registration records, devices) come a page at a time with the
// REST APIs' paging headers (x-ms-max-item-count; x-ms-continuation both ways) and ?filter=,
// which the server applies before paging. Each list remembers its page size, filter and the
// tokens of the pages seen, so "Previous page" goes back and a refresh stays on the page.

const PAGE_SIZES = [25, 50, 100, 500];
const listStates = new Map();
function listState(key) {
  if (!listStates.has(key)) listStates.set(key, { size: 100, filter: "", tokens: [null], index: 0 });
  return listStates.get(key);
}

/** One page of `path`: `{ items, total, next }`; an emptied page past the first steps back. */
async function fetchPage(path, state) {
  const headers = { "x-ms-max-item-count": String(state.size) };
  const token = state.tokens[state.index];
  if (token) headers["x-ms-continuation"] = token;
  const res = await fetch(`/api/${path}${state.filter ? `?filter=${enc(state.filter)}` : ""}`, { headers });
  let json = null;
  try { json = await res.json(); } catch (_) { json = null; }
  if (!res.ok) throw new ApiError(res.status, json);
  const next = res.headers.get("x-ms-continuation");
  state.tokens.length = state.index + 1;
  if (next) state.tokens.push(next);
  if (!json.length && state.index > 0) {
    state.index -= 1;
    return fetchPage(path, state);
  }
  return { items: json, total: Number(res.headers.get("x-iotemu-total-count") || json.length), next };
}

/** "1–100 of 250", Previous/Next page and the page size of a list; `reload` re-renders it. */
function pager(label, state, page, reload) {
  const from = page.items.length ? state.index * state.size + 1 : 0;
  const to = state.index * state.size + page.items.length;
  const size = h("select", {}, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.size }, String(n))));
  size.addEventListener("change", () => { state.size = Number(size.value); state.tokens = [null]; state.index = 0; guarded(reload); });
  return h("div", { class: "toolbar pager", role: "group", "aria-label": `Pages of ${label}` },
    h("span", { "data-field": "range", "aria-live": "polite" }, `${from}–${to} of ${page.total}`),
    h("button", { type: "button", disabled: state.index === 0, onclick: () => { state.index -= 1; guarded(reload); } }, "Previous page"),
    h("button", { type: "button", disabled: !page.next, onclick: () => { state.index += 1; guarded(reload); } }, "Next page"),
    field("Page size", size, true));
}

/** A search box over a paged list: the server filters ids, then pages from the first. */
function searchBox(label, state, reload) {
  const box = h("input", { type: "search", value: state.filter, placeholder: "Filter by id" });
  box.addEventListener("input", () => {
    state.filter = box.value.trim(); state.tokens = [null]; state.index = 0;
    guarded(async () => {
      await reload();
      const again = view().querySelector(`input[type=search][aria-label="${label}"]`) || view().querySelector("input[type=search]");
      if (again) { again.focus(); again.setSelectionRange(again.value.length, again.value.length); }
    });
  });
  box.setAttribute("aria-label", label);
  return field("Search", box, true);
}

/**
 * The Azure portal's way to delete from a list: a checkbox per row, one "Delete" above the list
 * for the rows checked. `box(id)` makes a row's checkbox; `button` deletes the checked ids.
 */
function selection(onDelete) {
  const chosen = new Set();
  const button = h("button", { type: "button", class: "danger", disabled: true, onclick: () => onDelete([...chosen]) }, "Delete selected");
  const box = (id) => {
    const check = h("input", { type: "checkbox", "aria-label": `Select ${id}` });
    check.addEventListener("change", () => {
      if (check.checked) chosen.add(id); else chosen.delete(id);
      button.disabled = chosen.size === 0;
    });
    return check;
  };
  return { button, box };
}

// ----- DPS overview -----

async function showOverview() {
  const o = await overview();
  const rows = [
    ["Service endpoint", o.serviceEndpoint],
    ["Global device endpoint", o.globalDeviceEndpoint],
    ["ID Scope", o.idScope],
  ];
  render("DPS overview",
    h("dl", { class: "props" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, h("span", { class: "mono", "data-field": k }, v), copyButton(v, k))])),
    h("h3", {}, "Shared access policies"),
    policyTable(o.policies),
    h("h3", {}, "Linked IoT hubs"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Hub"), h("th", {}, "Host name"), h("th", {}, "Connection strings"))),
      h("tbody", {}, o.hubs.map((hub) => h("tr", {}, h("td", {}, hub.name), h("td", { class: "mono" }, hub.hostName),
        h("td", {}, policyTable(hub.policies)))))),
    h("h3", {}, "CA certificate"),
    h("p", {}, "Devices and SDKs trust the emulator's CA: ", h("a", { href: "/ca.pem", download: "iotemu-ca.pem" }, "download ca.pem")));
}

function policyTable(policies) {
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Policy"), h("th", {}, "Rights"), h("th", {}, "Connection string"))),
    h("tbody", {}, policies.map((p) => h("tr", {}, h("td", {}, p.name), h("td", {}, (p.rights || []).join(", ")),
      h("td", {}, h("span", { class: "mono" }, p.connectionString), " ", copyButton(p.connectionString, `${p.name} connection string`))))));
}

// ----- enrollments and groups -----

const KINDS = {
  enrollments: { path: "enrollments", idField: "registrationId", title: "Individual enrollments", one: "enrollment", route: "enrollments" },
  groups: { path: "enrollmentGroups", idField: "enrollmentGroupId", title: "Enrollment groups", one: "enrollment group", route: "groups" },
};

function mechanismOf(e) {
  const a = e.attestation || {};
  return a.type === "symmetricKey" ? "Symmetric key" : a.type === "x509" ? "X.509" : a.type === "tpm" ? "TPM" : a.type || "";
}

async function showEnrollmentList(kind) {
  const k = KINDS[kind];
  const state = listState(k.path);
  const page = await fetchPage(k.path, state);
  const reload = () => showEnrollmentList(kind);
  const selected = selection((ids) => deleteEnrollments(kind, ids));
  render(k.title,
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "primary", onclick: () => { location.hash = `#/${k.route}/new`; } }, kind === "groups" ? "Add enrollment group" : "Add individual enrollment"),
      selected.button,
      searchBox(`Search ${k.title.toLowerCase()}`, state, reload)),
    pager(k.title.toLowerCase(), state, page, reload),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, h("span", { class: "visually-hidden" }, "Select")), h("th", {}, kind === "groups" ? "Group name" : "Registration ID"), h("th", {}, "Mechanism"),
      kind === "groups" ? null : h("th", {}, "Device ID"), h("th", {}, "Status"), h("th", {}, "Actions"))),
      h("tbody", {}, page.items.length ? page.items.map((e) => h("tr", { "data-id": e[k.idField] },
        h("td", {}, selected.box(e[k.idField])),
        h("td", {}, h("a", { href: `#/${k.route}/${enc(e[k.idField])}` }, e[k.idField])),
        h("td", {}, mechanismOf(e)),
        kind === "groups" ? null : h("td", {}, e.deviceId || ""),
        h("td", {}, e.provisioningStatus || "enabled"),
        h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${e[k.idField]}`, onclick: () => deleteEnrollment(kind, e[k.idField]) }, "Delete"))))
        : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "None")))));
}

function deleteEnrollment(kind, id) { return deleteEnrollments(kind, [id]); }

async function deleteEnrollments(kind, ids) {
  const k = KINDS[kind];
  if (!ids.length || !confirm(`Delete ${ids.length === 1 ? k.one : `${ids.length} ${k.one}s`} ${ids.join(", ")}?`)) return;
  await guarded(async () => {
    for (const id of ids) await api("DELETE", `${k.path}/${enc(id)}`);
    toast(`Deleted ${ids.join(", ")}`);
    if (location.hash !== `#/${k.route}`) location.hash = `#/${k.route}`; else await route();
  });
}

async function showEnrollmentForm(kind) {
  const k = KINDS[kind];
  const hubs = await hubNames();
  const hub = h("select", {}, h("option", { value: "" }, "All linked hubs"), hubs.map((x) => h("option", { value: x }, x)));
  const mechanism = h("select", {}, h("option", { value: "symmetricKey" }, "Symmetric key"), h("option", { value: "x509" }, "X.509"), h("option", { value: "tpm" }, "TPM"));
  const autoKeys = h("input", { type: "checkbox", checked: true });
  const primary = h("input", { type: "text", size: 60 });
  const secondary = h("input", { type: "text", size: 60 });
  const cert1 = h("textarea", { placeholder: "-----BEGIN CERTIFICATE-----" });
  const ek = h("input", { type: "text", size: 60 });
  const id = h("input", { type: "text", required: true, pattern: "[a-z0-9._:-]+", autocomplete: "off" });
  const deviceId = h("input", { type: "text", autocomplete: "off" });
  const status = h("select", {}, h("option", { value: "enabled" }, "Enable"), h("option", { value: "disabled" }, "Disable"));
  const allocation = h("select", {}, h("option", { value: "" }, "Service default"), h("option", { value: "hashed" }, "Evenly weighted distribution"),
    h("option", { value: "geoLatency" }, "Lowest latency"), h("option", { value: "static" }, "Static configuration"));
  const reprovision = h("select", {},
    h("option", { value: "migrate" }, "Re-provision and migrate data"),
    h("option", { value: "reset" }, "Re-provision and reset to initial config"),
    h("option", { value: "never" }, "Never re-provision"));
  const twin = h("textarea", {}, jsonText({ tags: {}, properties: { desired: {} } }));
  const keyFields = h("fieldset", {}, h("legend", {}, "Symmetric keys"), field("Auto-generate keys", autoKeys, true), field("Primary key", primary), field("Secondary key", secondary));
  const x509Fields = h("fieldset", { hidden: true }, h("legend", {}, "X.509"), field(kind === "groups" ? "Primary signing certificate (PEM)" : "Primary certificate (PEM)", cert1));
  const tpmFields = h("fieldset", { hidden: true }, h("legend", {}, "TPM"), field("Endorsement key (base64)", ek));
  const syncMechanism = () => {
    keyFields.hidden = mechanism.value !== "symmetricKey";
    x509Fields.hidden = mechanism.value !== "x509";
    tpmFields.hidden = mechanism.value !== "tpm";
  };
  const syncKeys = () => { primary.disabled = secondary.disabled = autoKeys.checked; };
  mechanism.addEventListener("change", syncMechanism);
  autoKeys.addEventListener("change", syncKeys);
  syncKeys();
  // Groups attest with symmetric keys or X.509 CAs only.
  if (kind === "groups") { tpmFields.remove(); mechanism.querySelector('option[value="tpm"]').remove(); }
  const message = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card", novalidate: true },
    field("Mechanism", mechanism), keyFields, x509Fields, tpmFields,
    field(kind === "groups" ? "Group name" : "Registration ID", id),
    kind === "groups" ? null : field("IoT Hub Device ID", deviceId),
    field("Provisioning status", status),
    field("Allocation policy", allocation),
    field("IoT hub this device can be assigned to", hub),
    field("Reprovisioning (when a device requests re-provisioning)", reprovision),
    field("Initial device twin state (JSON)", twin),
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, "Save"),
      h("button", { type: "button", onclick: () => { location.hash = `#/${k.route}`; } }, "Cancel")),
    message);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.textContent = "";
    const attestation = { type: mechanism.value };
    if (mechanism.value === "symmetricKey") {
      attestation.symmetricKey = autoKeys.checked ? {} : { primaryKey: primary.value, secondaryKey: secondary.value };
    } else if (mechanism.value === "x509") {
      const cert = { certificate: cert1.value.trim() };
      attestation.x509 = kind === "groups" ? { signingCertificates: { primary: cert } } : { clientCertificates: { primary: cert } };
    } else {
      attestation.tpm = { endorsementKey: ek.value.trim() };
    }
    const body = { [k.idField]: id.value.trim(), attestation, provisioningStatus: status.value,
      reprovisionPolicy: { updateHubAssignment: reprovision.value !== "never", migrateDeviceData: reprovision.value === "migrate" } };
    if (kind !== "groups" && deviceId.value.trim()) body.deviceId = deviceId.value.trim();
    if (allocation.value) body.allocationPolicy = allocation.value;
    if (hub.value) {
      body.iotHubs = [hub.value];
      if (allocation.value === "static") body.iotHubHostName = hub.value;
    }
    try { body.initialTwin = JSON.parse(twin.value || "null") || undefined; } catch (e) { message.textContent = `Initial twin: ${e.message}`; return; }
    try {
      await api("PUT", `${k.path}/${enc(body[k.idField])}`, body);
      toast(`Saved ${body[k.idField]}`);
      location.hash = `#/${k.route}`;
    } catch (e) { message.textContent = e.message; }
  });
  render(kind === "groups" ? "Add enrollment group" : "Add enrollment", form);
  mechanism.focus();
}

async function showEnrollment(kind, id) {
  const k = KINDS[kind];
  const e = await api("GET", `${k.path}/${enc(id)}`);
  const sk = (e.attestation || {}).symmetricKey;
  const rows = [
    [kind === "groups" ? "Group name" : "Registration ID", e[k.idField]],
    ["Mechanism", mechanismOf(e)],
    kind === "groups" ? null : ["IoT Hub Device ID", e.deviceId || "(the registration ID)"],
    ["Provisioning status", e.provisioningStatus || "enabled"],
    ["Allocation policy", e.allocationPolicy || "service default"],
    ["ETag", e.etag],
    sk ? ["Primary key", sk.primaryKey] : null,
    sk ? ["Secondary key", sk.secondaryKey] : null,
  ].filter(Boolean);
  const enabled = (e.provisioningStatus || "enabled") === "enabled";
  render(`${kind === "groups" ? "Enrollment group" : "Enrollment"} ${id}`,
    h("div", { class: "toolbar" },
      h("button", { type: "button", onclick: () => guarded(async () => {
        const updated = Object.assign({}, e, { provisioningStatus: enabled ? "disabled" : "enabled" });
        await api("PUT", `${k.path}/${enc(id)}`, updated, e.etag);
        toast(enabled ? "Disabled" : "Enabled");
        await showEnrollment(kind, id);
      }) }, enabled ? "Disable entry" : "Enable entry"),
      h("button", { type: "button", class: "danger", onclick: () => deleteEnrollment(kind, id) }, "Delete")),
    h("dl", { class: "props" }, rows.map(([label, value]) => [h("dt", {}, label),
      h("dd", {}, h("span", { class: "mono", "data-field": label }, value), /key/i.test(label) ? copyButton(value, label.toLowerCase()) : null)])),
    h("h3", {}, "Initial device twin state"),
    h("pre", {}, jsonText(e.initialTwin || {})),
    e.registrationState ? [h("h3", {}, "Registration"), h("pre", {}, jsonText(e.registrationState))] : null);
}

// ----- registration records -----

async function showRegistrations() {
  const state = listState("registrations");
  const page = await fetchPage("registrations", state);
  render("Registration records",
    h("div", { class: "toolbar" }, searchBox("Search registration records", state, showRegistrations)),
    pager("registration records", state, page, showRegistrations),
    h("table", {}, h("thead", {}, h("tr", {}, ["Registration ID", "Status", "Substatus", "Assigned hub", "Device ID", "Last updated", "Actions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, page.items.length ? page.items.map((r) => h("tr", { "data-id": r.registrationId },
        h("td", {}, r.registrationId), h("td", {}, r.status), h("td", {}, r.substatus || ""), h("td", {}, r.assignedHub || ""),
        h("td", {}, r.deviceId || ""), h("td", {}, r.lastUpdatedDateTimeUtc || ""),
        h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete registration ${r.registrationId}`, onclick: () => guarded(async () => {
          if (!confirm(`Delete the registration record of ${r.registrationId}?`)) return;
          await api("DELETE", `registrations/${enc(r.registrationId)}`);
          await showRegistrations();
        }) }, "Delete"))))
        : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "None")))));
}

// ----- hubs and devices -----

async function hubNames() {
  return (await overview()).hubs.map((x) => x.hostName);
}

async function showDevices() {
  const hubs = await hubNames();
  const sections = [];
  for (const hub of hubs) {
    const state = listState(`hubs/${hub}/devices`);
    const page = await fetchPage(`hubs/${enc(hub)}/devices`, state);
    const addForm = deviceForm(hub);
    const selected = selection((ids) => deleteDevices(hub, ids));
    sections.push(h("section", { class: "card", "aria-label": `Devices of ${hub}` },
      h("h3", {}, hub),
      h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => { addForm.hidden = false; addForm.querySelector("input").focus(); } }, "Add device"),
        h("button", { type: "button", onclick: () => guarded(showDevices) }, "Refresh"),
        selected.button,
        searchBox(`Search devices of ${hub}`, state, showDevices)),
      addForm,
      pager(`devices of ${hub}`, state, page, showDevices),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, h("span", { class: "visually-hidden" }, "Select")), ["Device ID", "Status", "Connection state", "Last activity", "Authentication type", "Modules", "Actions"].map((t) => h("th", {}, t)))),
        h("tbody", {}, page.items.length ? page.items.map((d) => h("tr", { "data-device": d.deviceId },
          h("td", {}, selected.box(d.deviceId)),
          h("td", {}, h("a", { href: `#/devices/${enc(hub)}/${enc(d.deviceId)}` }, d.deviceId)),
          h("td", { "data-col": "status" }, d.status === "enabled" ? "Enabled" : "Disabled"),
          h("td", {}, d.connectionState), h("td", {}, d.lastActivityTime || ""),
          h("td", { "data-col": "auth" }, (d.authentication || {}).type), h("td", {}, String(d.moduleCount || 0)),
          h("td", {}, h("button", { type: "button", onclick: () => toggleDevice(hub, d) }, d.status === "enabled" ? "Disable" : "Enable"), " ",
            h("button", { type: "button", class: "danger", "aria-label": `Delete device ${d.deviceId}`, onclick: () => deleteDevice(hub, d.deviceId) }, "Delete"))))
          : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No devices"))))));
  }
  render("IoT devices", ...sections);
}

/**
 * The authentication of a new device or module, as the Azure portal asks for it: symmetric key
 * (auto-generated, or the keys given), X.509 self-signed (primary/secondary thumbprints) or X.509
 * CA signed. `fields` go in the form; `value()` is the identity's `authentication` JSON.
 */
function authFields() {
  const type = h("select", {}, h("option", { value: "sas" }, "Symmetric key"),
    h("option", { value: "selfSigned" }, "X.509 self-signed"), h("option", { value: "certificateAuthority" }, "X.509 CA signed"));
  const autoKeys = h("input", { type: "checkbox", checked: true });
  const primaryKey = h("input", { type: "text", size: 66, autocomplete: "off" });
  const secondaryKey = h("input", { type: "text", size: 66, autocomplete: "off" });
  const primary = h("input", { type: "text", size: 66, autocomplete: "off" });
  const secondary = h("input", { type: "text", size: 66, autocomplete: "off" });
  const keys = h("fieldset", {}, h("legend", {}, "Symmetric keys"),
    field("Auto-generate keys", autoKeys, true), field("Primary key", primaryKey), field("Secondary key", secondaryKey));
  const thumbprints = h("fieldset", { hidden: true }, h("legend", {}, "Thumbprints (SHA-1 or SHA-256, hex)"),
    field("Primary thumbprint", primary), field("Secondary thumbprint", secondary));
  const sync = () => {
    keys.hidden = type.value !== "sas";
    thumbprints.hidden = type.value !== "selfSigned";
    primaryKey.disabled = secondaryKey.disabled = autoKeys.checked;
  };
  type.addEventListener("change", sync);
  autoKeys.addEventListener("change", sync);
  sync();
  const given = (input) => input.value.trim() || null;
  const value = () => {
    if (type.value === "sas") {
      return { type: "sas", symmetricKey: autoKeys.checked ? { primaryKey: null, secondaryKey: null } : { primaryKey: given(primaryKey), secondaryKey: given(secondaryKey) } };
    }
    if (type.value === "selfSigned") return { type: "selfSigned", x509Thumbprint: { primaryThumbprint: given(primary), secondaryThumbprint: given(secondary) } };
    return { type: "certificateAuthority" };
  };
  return { fields: [field("Authentication type", type), keys, thumbprints], value };
}

/** The "Add device" form. */
function deviceForm(hub) {
  const id = h("input", { type: "text", required: true, autocomplete: "off" });
  const auth = authFields();
  const message = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card", "aria-label": `Add a device to ${hub}`, hidden: true },
    field("Device ID", id), auth.fields,
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, "Save device"),
      h("button", { type: "button", onclick: () => { form.hidden = true; } }, "Cancel")),
    message);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.textContent = "";
    const deviceId = id.value.trim();
    try {
      await api("PUT", `hubs/${enc(hub)}/devices/${enc(deviceId)}`, { deviceId, status: "enabled", authentication: auth.value() });
      toast(`Added ${deviceId}`);
      await showDevices();
    } catch (e) { message.textContent = e.message; }
  });
  return form;
}

async function toggleDevice(hub, d) {
  await guarded(async () => {
    const body = { deviceId: d.deviceId, status: d.status === "enabled" ? "disabled" : "enabled", authentication: d.authentication };
    await api("PUT", `hubs/${enc(hub)}/devices/${enc(d.deviceId)}`, body, d.etag);
    await route();
  });
}

function deleteDevice(hub, id) { return deleteDevices(hub, [id]); }

async function deleteDevices(hub, ids) {
  if (!ids.length || !confirm(`Delete ${ids.length === 1 ? "device" : `${ids.length} devices`} ${ids.join(", ")}?`)) return;
  await guarded(async () => {
    for (const id of ids) await api("DELETE", `hubs/${enc(hub)}/devices/${enc(id)}`);
    toast(`Deleted ${ids.join(", ")}`);
    if (location.hash !== "#/devices") location.hash = "#/devices"; else await showDevices();
  });
}

/**
 * The twin form of a device or module (`base` is its API path): reported properties, and tags
 * and desired properties edited as a merge patch sent with the ETag the page read.
 */
function twinForm(base, twin, reload) {
  const twinText = h("textarea", { rows: 12 }, jsonText({ tags: twin.tags || {}, properties: { desired: stripMeta((twin.properties || {}).desired || {}) } }));
  const twinMessage = h("p", { role: "status" });
  const form = h("form", { class: "card", "aria-label": twin.moduleId ? "Module twin" : "Device twin" },
    h("p", {}, "ETag ", h("code", { "data-field": "twin-etag" }, twin.etag || "")),
    h("h3", {}, "Reported properties"), h("pre", { "data-field": "reported" }, jsonText((twin.properties || {}).reported || {})),
    field("Tags and desired properties (JSON merge patch)", twinText),
    h("button", { type: "submit", class: "primary" }, "Save twin"), twinMessage);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    twinMessage.className = ""; twinMessage.textContent = "";
    let patch;
    try { patch = JSON.parse(twinText.value); } catch (e) { twinMessage.className = "error"; twinMessage.textContent = e.message; return; }
    try {
      await api("PATCH", `${base}/twin`, patch, twin.etag);
      toast("Twin saved");
      await reload();
    } catch (e) {
      twinMessage.className = "error";
      twinMessage.textContent = e.status === 412 ? `Conflict: the twin changed since this page read it (ETag ${twin.etag}). Reload to see the new twin. ${e.message}` : e.message;
    }
  });
  return form;
}

/** The direct method form of a device or module (`base` is its API path). */
function methodForm(base) {
  const methodName = h("input", { type: "text", required: true });
  const payload = h("textarea", { rows: 4 }, "{}");
  const timeout = h("input", { type: "text", value: "30", size: 4, inputmode: "numeric" });
  const methodResult = h("pre", { "data-field": "method-result", "aria-live": "polite" });
  const form = h("form", { class: "card", "aria-label": "Direct method" },
    field("Method name", methodName), field("Payload (JSON)", payload), field("Response timeout (seconds)", timeout),
    h("button", { type: "submit", class: "primary" }, "Invoke method"), h("h3", {}, "Result"), methodResult);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    methodResult.textContent = "Waiting for the answer…";
    let body;
    try { body = { methodName: methodName.value, payload: JSON.parse(payload.value || "null"), responseTimeoutInSeconds: Number(timeout.value) || 30 }; }
    catch (e) { methodResult.textContent = `Payload: ${e.message}`; return; }
    try { methodResult.textContent = jsonText(await api("POST", `${base}/methods`, body)); }
    catch (e) { methodResult.textContent = e.message; }
  });
  return form;
}

/** A device's modules: links to their pages, "Add module" (symmetric key or X.509, as a device), delete. */
function moduleSection(hub, id, modules) {
  const base = `hubs/${enc(hub)}/devices/${enc(id)}/modules`;
  const moduleId = h("input", { type: "text", autocomplete: "off" });
  const auth = authFields();
  const message = h("p", { class: "error", role: "alert" });
  const add = h("form", { class: "card", "aria-label": "Add module" }, field("Module ID", moduleId), auth.fields,
    h("button", { type: "submit" }, "Add module"), message);
  add.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.textContent = "";
    const mid = moduleId.value.trim();
    try {
      await api("PUT", `${base}/${enc(mid)}`, { moduleId: mid, authentication: auth.value() });
      toast(`Added module ${mid}`);
      await showDevice(hub, id);
    } catch (e) { message.textContent = e.message; }
  });
  return h("section", { class: "card", "aria-label": "Modules" },
    h("table", {}, h("thead", {}, h("tr", {}, ["Module ID", "Connection state", "Authentication type", "Actions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, modules.length ? modules.map((m) => h("tr", { "data-module": m.moduleId },
        h("td", {}, h("a", { href: `#/devices/${enc(hub)}/${enc(id)}/modules/${enc(m.moduleId)}` }, m.moduleId)),
        h("td", {}, m.connectionState), h("td", { "data-col": "auth" }, (m.authentication || {}).type),
        h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete module ${m.moduleId}`, onclick: () => deleteModule(hub, id, m.moduleId) }, "Delete"))))
        : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No modules")))),
    add);
}

async function deleteModule(hub, id, moduleId) {
  if (!confirm(`Delete module ${moduleId} of ${id}?`)) return;
  await guarded(async () => {
    await api("DELETE", `hubs/${enc(hub)}/devices/${enc(id)}/modules/${enc(moduleId)}`);
    toast(`Deleted module ${moduleId}`);
    const devicePage = `#/devices/${enc(hub)}/${enc(id)}`;
    if (location.hash !== devicePage) location.hash = devicePage; else await showDevice(hub, id);
  });
}

/** A module: its identity with keys, its twin and its direct methods. */
async function showModule(hub, id, moduleId) {
  const base = `hubs/${enc(hub)}/devices/${enc(id)}/modules/${enc(moduleId)}`;
  const m = await api("GET", base);
  const twin = await api("GET", `${base}/twin`);
  const keys = (m.authentication || {}).symmetricKey || {};
  const thumbprints = (m.authentication || {}).x509Thumbprint || {};
  const props = [["Module ID", m.moduleId], ["Device ID", m.deviceId], ["Connection state", m.connectionState],
    ["Authentication type", (m.authentication || {}).type], ["Primary key", keys.primaryKey], ["Secondary key", keys.secondaryKey],
    ["Primary thumbprint", thumbprints.primaryThumbprint], ["Secondary thumbprint", thumbprints.secondaryThumbprint]]
    .filter(([, v]) => v !== undefined && v !== null);
  render(`Module ${moduleId}`,
    h("p", {}, h("a", { href: `#/devices/${enc(hub)}/${enc(id)}` }, `← Device ${id}`), ` · hub ${hub}`),
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "danger", onclick: () => deleteModule(hub, id, moduleId) }, "Delete module")),
    h("dl", { class: "props" }, props.map(([k, v]) => [h("dt", {}, k), h("dd", {}, h("span", { class: "mono", "data-field": k }, v), /key/i.test(k) ? copyButton(v, k.toLowerCase()) : null)])),
    h("h3", {}, "Module twin"), twinForm(base, twin, () => showModule(hub, id, moduleId)),
    h("h3", {}, "Direct method"), methodForm(base));
}

async function showDevice(hub, id) {
  const d = await api("GET", `hubs/${enc(hub)}/devices/${enc(id)}`);
  const modules = await api("GET", `hubs/${enc(hub)}/devices/${enc(id)}/modules`);
  const twin = await api("GET", `hubs/${enc(hub)}/devices/${enc(id)}/twin`);
  const keys = (d.authentication || {}).symmetricKey || {};
  const thumbprints = (d.authentication || {}).x509Thumbprint || {};
  const props = [["Device ID", d.deviceId], ["Status", d.status], ["Connection state", d.connectionState], ["Last activity", d.lastActivityTime || ""],
    ["Authentication type", (d.authentication || {}).type], ["Primary key", keys.primaryKey], ["Secondary key", keys.secondaryKey],
    ["Primary thumbprint", thumbprints.primaryThumbprint], ["Secondary thumbprint", thumbprints.secondaryThumbprint]].filter(([, v]) => v !== undefined && v !== null);
  const base = `hubs/${enc(hub)}/devices/${enc(id)}`;
  // Cloud-to-device message.
  const c2dBody = h("textarea", { rows: 3 });
  const c2dProps = h("textarea", { rows: 3, placeholder: "name=value, one a line" });
  const c2dId = h("input", { type: "text" });
  const c2dAck = h("select", {}, ["none", "positive", "negative", "full"].map((v) => h("option", { value: v }, v)));
  const c2dResult = h("p", { role: "status", "data-field": "c2d-result" });
  const c2dForm = h("form", { class: "card", "aria-label": "Message to device" },
    field("Message body", c2dBody), field("Application properties", c2dProps), field("Message ID (optional)", c2dId), field("Acknowledgement (feedback)", c2dAck),
    h("button", { type: "submit", class: "primary" }, "Send message"), c2dResult);
  c2dForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const properties = {};
    for (const line of c2dProps.value.split("\n")) {
      const at = line.indexOf("=");
      if (at > 0) properties[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    try {
      const sent = await api("POST", `hubs/${enc(hub)}/devices/${enc(id)}/messages`, { body: c2dBody.value, properties, messageId: c2dId.value, ack: c2dAck.value });
      c2dResult.className = "ok";
      c2dResult.textContent = `Sent, message ID ${sent.messageId}`;
    } catch (e) { c2dResult.className = "error"; c2dResult.textContent = e.message; }
    await refreshDelivery();
  });
  // What happened to the messages: the device's queue and the feedback the hub recorded.
  const queue = h("tbody", {});
  const feedback = h("tbody", {});
  const refreshDelivery = () => guarded(async () => {
    const [queued, records] = await Promise.all([
      api("GET", `hubs/${enc(hub)}/devices/${enc(id)}/messages`),
      api("GET", `hubs/${enc(hub)}/feedback`),
    ]);
    queue.replaceChildren(...(queued.length ? queued.map((m) => h("tr", {}, h("td", { class: "mono" }, m.messageId), h("td", {}, m.body),
      h("td", {}, JSON.stringify(m.properties)), h("td", {}, m.inFlight ? "delivered, not settled" : "queued"), h("td", {}, String(m.deliveryCount))))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing queued"))]));
    const ours = records.filter((r) => r.deviceId === id);
    feedback.replaceChildren(...(ours.length ? ours.map((r) => h("tr", { "data-feedback": r.originalMessageId }, h("td", { class: "mono" }, r.originalMessageId),
      h("td", { "data-col": "status" }, r.statusCode), h("td", {}, r.description), h("td", {}, r.enqueuedTimeUtc)))
      : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No unread feedback"))]));
  });
  const delivery = h("section", { class: "card", "aria-label": "Delivery" },
    h("div", { class: "toolbar" }, h("button", { type: "button", onclick: refreshDelivery }, "Refresh delivery and feedback")),
    h("h3", {}, "Queued for the device"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Message ID", "Body", "Properties", "State", "Deliveries"].map((t) => h("th", {}, t)))), queue),
    h("h3", {}, "Feedback (unread by service receivers; left for them)"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Original message ID", "Status", "Description", "Enqueued"].map((t) => h("th", {}, t)))), feedback));
  render(`Device ${id}`,
    h("p", {}, h("a", { href: "#/devices" }, "← All devices"), ` · hub ${hub}`),
    h("div", { class: "toolbar" },
      h("button", { type: "button", onclick: () => toggleDevice(hub, d) }, d.status === "enabled" ? "Disable" : "Enable"),
      h("button", { type: "button", class: "danger", onclick: () => deleteDevice(hub, id) }, "Delete device"),
      h("a", { href: `#/telemetry?device=${enc(id)}` }, "Live telemetry")),
    h("dl", { class: "props" }, props.map(([k, v]) => [h("dt", {}, k), h("dd", {}, h("span", { class: "mono" }, v), /key/i.test(k) ? copyButton(v, k.toLowerCase()) : null)])),
    h("h3", {}, `Modules (${modules.length})`), moduleSection(hub, id, modules),
    h("h3", {}, "Device twin"), twinForm(base, twin, () => showDevice(hub, id)),
    h("h3", {}, "Direct method"), methodForm(base),
    h("h3", {}, "Message to device"), c2dForm, delivery);
  await refreshDelivery();
}

function stripMeta(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (!k.startsWith("$")) out[k] = v;
  return out;
}

// ----- certificates -----

async function showCertificates() {
  const hubs = await hubNames();
  const stores = [{ title: "Device Provisioning Service", path: "certificates" }]
    .concat(hubs.map((hub) => ({ title: `IoT hub ${hub}`, path: `hubs/${enc(hub)}/certificates` })));
  const sections = [];
  for (const store of stores) sections.push(await certificateSection(store));
  render("Certificates", h("p", { class: "muted" },
    "Upload a root or intermediate CA, generate a verification code, then upload a certificate with that code as its subject CN signed by the CA's key (iotemu certs verification --ca … --code …)."),
  ...sections);
}

/** A PEM field: a text area, and a file picker that fills it. */
function pemField(label) {
  const text = h("textarea", { rows: 5, placeholder: "-----BEGIN CERTIFICATE-----" });
  const file = h("input", { type: "file", accept: ".pem,.cer,.crt" });
  file.addEventListener("change", async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  return { text, fields: [field(label, text), field(`${label}: from a file`, file)] };
}

async function certificateSection(store) {
  const list = await api("GET", store.path);
  const name = h("input", { type: "text", autocomplete: "off" });
  const pem = pemField("Certificate (.pem or .cer)");
  const verified = h("input", { type: "checkbox" });
  const message = h("p", { role: "status" });
  const upload = h("form", { class: "card", "aria-label": `Add a certificate to ${store.title}` },
    h("h3", {}, "Add certificate"), field("Certificate name", name), pem.fields,
    field("Set certificate status to verified on upload", verified, true),
    h("button", { type: "submit", class: "primary" }, "Save"), message);
  upload.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("PUT", `${store.path}/${enc(name.value.trim())}`, { certificate: pem.text.value, isVerified: verified.checked });
      toast(`Uploaded ${name.value}`);
      await showCertificates();
    } catch (e) { message.className = "error"; message.textContent = e.message; }
  });
  const rows = list.map((c) => {
    const p = c.properties;
    const proof = pemField(`Verification certificate for ${c.name}`);
    const result = h("p", { role: "status" });
    const actions = p.isVerified ? [] : [
      h("button", { type: "button", onclick: () => guarded(async () => {
        await api("POST", `${store.path}/${enc(c.name)}/verificationCode`);
        await showCertificates();
      }) }, "Generate verification code"),
      p.verificationCode ? h("form", { "aria-label": `Verify ${c.name}`, onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await api("POST", `${store.path}/${enc(c.name)}/verify`, { certificate: proof.text.value });
          toast(`${c.name} verified`);
          await showCertificates();
        } catch (e) { result.className = "error"; result.textContent = e.message; }
      } }, proof.fields, h("button", { type: "submit" }, "Verify"), result) : null,
    ];
    return h("tr", { "data-certificate": c.name },
      h("td", {}, c.name), h("td", {}, p.subject), h("td", { class: "mono" }, h("span", { class: "mono" }, p.thumbprint)),
      h("td", { "data-col": "status" }, p.isVerified ? "Verified" : "Unverified"),
      h("td", {}, p.verificationCode ? [h("code", { "data-field": "verification-code" }, p.verificationCode), " ", copyButton(p.verificationCode, "verification code")] : ""),
      h("td", {}, actions, h("button", { type: "button", class: "danger", "aria-label": `Delete certificate ${c.name}`, onclick: () => guarded(async () => {
        if (!confirm(`Delete certificate ${c.name}?`)) return;
        await api("DELETE", `${store.path}/${enc(c.name)}`);
        await showCertificates();
      }) }, "Delete")));
  });
  return h("section", { class: "card", "aria-label": `Certificates of ${store.title}` },
    h("h3", {}, store.title),
    h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Subject", "Thumbprint", "Status", "Verification code", "Actions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No certificates")))),
    upload);
}

// ----- live telemetry -----

let stream = null;
function stopStream() { if (stream) { stream.close(); stream = null; } }

function showTelemetry(params) {
  const device = h("input", { type: "text", value: params.get("device") || "", autocomplete: "off" });
  const pause = h("button", { type: "button", "aria-pressed": "false" }, "Pause");
  const clear = h("button", { type: "button" }, "Clear");
  const count = h("span", { "data-field": "count" }, "0");
  const list = h("div", { "aria-label": "Messages", role: "log" });
  let paused = false;
  let received = 0;
  const held = [];
  const show = (m) => {
    const item = h("article", { class: "message", "data-device": m.deviceId },
      h("header", {}, h("span", {}, m.deviceId + (m.moduleId ? `/${m.moduleId}` : "")), h("span", { class: "muted" }, m.enqueuedTimeUtc), h("span", { class: "muted" }, `#${m.sequenceNumber}`)),
      h("div", {}, h("strong", {}, "Body: "), h("code", { "data-field": "body" }, m.body !== null ? m.body : `(base64) ${m.bodyBase64}`)),
      h("div", {}, h("strong", {}, "System properties: "), h("code", { "data-field": "system-properties" }, JSON.stringify(m.systemProperties))),
      h("div", {}, h("strong", {}, "Application properties: "), h("code", {}, JSON.stringify(m.properties))));
    list.prepend(item);
  };
  const connect = () => {
    stopStream();
    const q = new URLSearchParams({ replay: "true" });
    if (device.value.trim()) q.set("deviceId", device.value.trim());
    list.replaceChildren(); received = 0; count.textContent = "0";
    stream = new EventSource(`/telemetry/stream?${q}`);
    stream.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      received += 1; count.textContent = String(received);
      if (paused) held.push(m); else show(m);
    };
  };
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) held.splice(0).forEach(show);
  });
  clear.addEventListener("click", () => list.replaceChildren());
  const filter = h("form", { class: "toolbar" }, field("Filter by device ID", device, true), h("button", { type: "submit" }, "Apply"), pause, clear,
    h("span", {}, "Messages received: ", count));
  filter.addEventListener("submit", (ev) => { ev.preventDefault(); connect(); });
  render("Live telemetry", filter, list);
  connect();
}

// ----- files -----
// What devices uploaded to the built-in blob store (docs/file-upload.md), newest first, each a
// link to its bytes on the control port (GET /blobs/{container}/{name}).

async function showFiles() {
  const blobs = (await api("GET", "blobs")).sort((a, b) => b.lastModified.localeCompare(a.lastModified));
  const href = (b) => `/blobs/${enc(b.container)}/${b.name.split("/").map(enc).join("/")}`;
  render("Uploaded files",
    h("p", { class: "muted" }, "Files devices uploaded with the hub's file upload (get_storage_info_for_blob / uploadToBlob) into the built-in blob store. Uploads to a storage account a hub names by connection string, such as Azurite, are in that account."),
    h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => guarded(showFiles) }, "Refresh")),
    h("table", {}, h("thead", {}, h("tr", {}, ["Container", "Blob", "Bytes", "Content type", "Last modified"].map((t) => h("th", {}, t)))),
      h("tbody", {}, blobs.length ? blobs.map((b) => h("tr", { "data-blob": `${b.container}/${b.name}` },
        h("td", {}, b.container),
        h("td", {}, h("a", { href: href(b), download: b.name.split("/").pop() }, b.name)),
        h("td", { "data-col": "size" }, String(b.size)),
        h("td", {}, b.contentType),
        h("td", {}, b.lastModified)))
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No files uploaded yet")))));
}

// ----- faults -----
// The rules of docs/faults.md: a list with each rule's hits, a form that builds the JSON rule
// the control port takes, and removal. The server checks every rule; its 400 message is shown.

const FAULT_OPERATIONS = ["dps.register", "dps.poll", "hub.connect", "hub.telemetry", "hub.twin.get", "hub.twin.patch", "hub.method", "hub.service", "dps.service", "hub.c2d", "hub.c2d.send"];

/** One line describing a rule's action. */
function faultAction(action) {
  if (action.refuse) return `refuse ${action.refuse.status}${action.refuse.retryAfter !== undefined ? ` (retry-after ${action.refuse.retryAfter} s)` : ""}`;
  if (action.delay) return `delay ${action.delay.ms} ms`;
  if (action.drop) return `drop ${action.drop.when === "afterAck" ? "after" : "before"} the ack`;
  if (action.stall) return "stall";
  return JSON.stringify(action);
}

/** The rule the form describes, in the control port's JSON form. */
function faultRuleFrom(form) {
  const dps = form.operation.value.startsWith("dps.");
  // The service APIs' rules are addressed by the request path, the others by an id.
  const service = form.operation.value.endsWith(".service");
  const rule = { operation: form.operation.value, action: {} };
  const id = form.id.value.trim();
  if (id) rule[service ? "path" : dps ? "registrationId" : "deviceId"] = id;
  const target = form.target.value.trim();
  if (target) rule[dps ? "idScope" : "hub"] = target;
  const kind = form.kind.value;
  if (kind === "refuse") {
    const refuse = { status: Number(form.status.value) };
    if (form.retryAfter.value.trim()) refuse.retryAfter = Number(form.retryAfter.value);
    rule.action.refuse = refuse;
  } else if (kind === "delay") {
    rule.action.delay = { ms: Number(form.ms.value) };
  } else if (kind === "drop-before" || kind === "drop-after") {
    rule.action.drop = { when: kind === "drop-after" ? "afterAck" : "beforeAck" };
  } else {
    rule.action.stall = {};
  }
  if (form.count.value.trim()) rule.count = Number(form.count.value);
  if (form.after.value.trim()) rule.after = Number(form.after.value);
  if (form.probability.value.trim()) rule.probability = Number(form.probability.value);
  return rule;
}

/** The clock section of the faults view: its offsets and a form that moves it ahead (docs/faults.md, "Time control"). */
function clockSection(clock) {
  const seconds = h("input", { name: "seconds", type: "number", min: 0, step: "any", value: "3600" });
  const credentials = h("input", { name: "credentials", type: "checkbox" });
  const form = h("form", { "aria-label": "Advance the clock" },
    field("Seconds to move the clock ahead", seconds),
    field("Also age connected clients' SAS tokens (sessions whose token runs out end)", credentials, true),
    h("button", { type: "submit" }, "Advance"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const advanced = await api("POST", "time/advance", { seconds: Number(seconds.value), credentials: credentials.checked });
      toast(`Clock ${advanced.offsetSeconds} s ahead; ${advanced.expiredC2d} C2D message(s) expired`);
      await showFaults();
    });
  });
  return [
    h("h3", {}, "Clock"),
    h("p", { class: "muted" }, "Move the emulator's clock ahead instead of waiting: C2D messages expire, method calls time out, DPS assignment delays end. It never goes back; a restart starts at the wall clock."),
    h("dl", { class: "props", "aria-label": "Clock" },
      h("dt", {}, "Now"), h("dd", { "data-field": "now" }, clock.now),
      h("dt", {}, "Ahead of the wall clock"), h("dd", { "data-field": "offset" }, `${clock.offsetSeconds} s`),
      h("dt", {}, "Credentials ahead by"), h("dd", { "data-field": "credentialOffset" }, `${clock.credentialOffsetSeconds} s`)),
    form,
  ];
}

async function showFaults() {
  const [rules, clock] = await Promise.all([api("GET", "faults"), api("GET", "time")]);
  const input = (name, attrs) => h("input", Object.assign({ name }, attrs || {}));
  const operation = h("select", { name: "operation" }, FAULT_OPERATIONS.map((o) => h("option", { value: o }, o)));
  const kind = h("select", { name: "kind" },
    [["refuse", "Refuse"], ["delay", "Delay the answer"], ["drop-before", "Drop the connection before the ack"],
      ["drop-after", "Drop the connection after the ack"], ["stall", "Stall (never answer)"]].map(([v, t]) => h("option", { value: v }, t)));
  const status = h("select", { name: "status" }, ["429", "503", "500", "401"].map((c) => h("option", { value: c }, c)));
  const form = h("form", { "aria-label": "Add a fault" },
    field("Operation", operation),
    field("Registration or device ID pattern, or a service request path such as /devices/* (* matches any run; empty = every one)", input("id", { placeholder: "my-device-*" })),
    field("ID scope (DPS) or hub name (hub); empty = any", input("target")),
    field("Action", kind),
    field("Status (refuse)", status),
    field("Retry-After seconds (refuse 429 / 503)", input("retryAfter", { type: "number", min: 0, max: 3600, value: "5" })),
    field("Delay ms (delay)", input("ms", { type: "number", min: 1, max: 600000, value: "2000" })),
    field("Count (empty = until removed)", input("count", { type: "number", min: 1, max: 1000000, value: "1" })),
    field("Let this many matching requests through first", input("after", { type: "number", min: 0, max: 1000000 })),
    field("Probability (0–1; empty = every request)", input("probability", { type: "number", min: 0, max: 1, step: "any" })),
    h("button", { type: "submit" }, "Add fault"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const rule = faultRuleFrom(form);
      // retryAfter belongs to 429 and 503 only; the server refuses it elsewhere.
      if (rule.action.refuse && !["429", "503"].includes(form.status.value)) delete rule.action.refuse.retryAfter;
      const added = await api("POST", "faults", rule);
      toast(`Added ${added.id}`);
      await showFaults();
    });
  });
  render("Faults",
    h("p", { class: "muted" }, "Make DPS or a hub refuse, delay, drop or stall matching requests, to test how devices recover. Every hit is counted and logged at INFO (docs/faults.md)."),
    h("table", {}, h("thead", {}, h("tr", {}, ["ID", "Operation", "Target", "Action", "Hits", "Remaining", "Actions"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rules.length ? rules.map((r) => h("tr", { "data-id": r.id },
        h("td", {}, r.id), h("td", {}, r.operation),
        h("td", {}, [r.idScope || r.hub, r.registrationId || r.deviceId || r.path].filter(Boolean).join(" / ")),
        h("td", {}, faultAction(r.action), r.after ? `, after ${r.after}` : "", r.probability !== undefined ? `, p = ${r.probability}` : ""),
        h("td", { "data-field": "hits" }, String(r.hits)),
        h("td", {}, r.remaining !== undefined ? String(r.remaining) : "until removed"),
        h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Remove fault ${r.id}`, onclick: () => guarded(async () => {
          await api("DELETE", `faults/${enc(r.id)}`);
          await showFaults();
        }) }, "Remove"))))
        : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No faults installed")))),
    h("h3", {}, "Add a fault"), form,
    clockSection(clock));
}

// ----- routing -----

async function route(event) {
  stopStream();
  overviewCache = null;
  const [path, query] = (location.hash.replace(/^#\//, "") || "overview").split("?");
  const parts = path.split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) {
    const current = a.getAttribute("href").slice(2) === parts[0];
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  await guarded(async () => {
    switch (parts[0]) {
      case "overview": return showOverview();
      case "enrollments":
      case "groups": {
        const kind = parts[0];
        if (parts[1] === "new") return showEnrollmentForm(kind);
        if (parts[1]) return showEnrollment(kind, parts[1]);
        return showEnrollmentList(kind);
      }
      case "registrations": return showRegistrations();
      case "devices":
        if (parts[3] === "modules" && parts[4]) return showModule(parts[1], parts[2], parts[4]);
        return parts[2] ? showDevice(parts[1], parts[2]) : showDevices();
      case "certificates": return showCertificates();
      case "telemetry": return showTelemetry(new URLSearchParams(query || ""));
      case "files": return showFiles();
      case "faults": return showFaults();
      default: render("Not found", h("p", {}, "No such view."));
    }
  });
  // After a navigation, keyboard and screen-reader users land on the new view.
  if (event) view().focus({ preventScroll: true });
}

window.addEventListener("hashchange", (event) => route(event));
route();
