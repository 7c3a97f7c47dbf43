#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/: small inputs built from the examples in
the protocol notes (spec/protocol.md, spec/mqtt-front.md), the quickstart fixture and
certificates made by `iotemu certs`. Rerun after changing a target's input format:

    python3 fuzz/make-seeds.py [--certs DIR]   # DIR: output of `iotemu certs root/intermediate/device`
"""
import hashlib, json, os, struct, sys, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
ROOT = os.path.dirname(HERE)


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


# ---- MQTT 3.1.1 encoding --------------------------------------------------------------------
def varlen(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def mstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(s)) + s


def packet(first, body):
    return bytes([first]) + varlen(len(body)) + body


def connect(client_id, username=None, password=None, keep_alive=60, flags=0x02):
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = mstr("MQTT") + bytes([4, flags]) + struct.pack(">H", keep_alive) + mstr(client_id)
    if username is not None:
        body += mstr(username)
    if password is not None:
        body += mstr(password)
    return packet(0x10, body)


def publish(topic, payload=b"", qos=1, pkid=1):
    payload = payload.encode() if isinstance(payload, str) else payload
    body = mstr(topic) + (struct.pack(">H", pkid) if qos else b"") + payload
    return packet(0x30 | (qos << 1), body)


def subscribe(filters, pkid=1):
    body = struct.pack(">H", pkid) + b"".join(mstr(f) + bytes([q]) for f, q in filters)
    return packet(0x82, body)


def unsubscribe(filters, pkid=2):
    return packet(0xA2, struct.pack(">H", pkid) + b"".join(mstr(f) for f in filters))


PUBACK = lambda pkid: packet(0x40, struct.pack(">H", pkid))
PINGREQ = packet(0xC0, b"")
DISCONNECT = packet(0xE0, b"")

SCOPE, REG, DEV, HUB = "0ne00000A0A", "symm-key-python-device-008", "python-device-008", "localhost"
TOKEN = "SharedAccessSignature sr=localhost%2Fdevices%2Fpython-device-008&sig=Zm9v&se=4102444800"
DPS_TOKEN = ("SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fsymm-key-python-device-008"
             "&sig=YmFy%3D&se=4102444800&skn=registration")

dps_session = [
    subscribe([("$dps/registrations/res/#", 1)]),
    publish("$dps/registrations/PUT/iotdps-register/?$rid=1",
            json.dumps({"payload": None, "registrationId": REG})),
    publish("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.abc.0", "", pkid=2),
    PINGREQ,
    PUBACK(1),
    DISCONNECT,
]
hub_session = [
    subscribe([("$iothub/twin/res/#", 1), ("$iothub/methods/POST/#", 0),
               ("devices/python-device-008/messages/devicebound/#", 1),
               ("$iothub/twin/PATCH/properties/desired/#", 0)]),
    publish("devices/python-device-008/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&temp=hot",
            '{"temperature": 21.5}'),
    publish("$iothub/twin/GET/?$rid=1", " ", pkid=2),
    publish("$iothub/twin/PATCH/properties/reported/?$rid=2",
            '{"connectivity": {"type": "cellular"}, "fw": null}', pkid=3),
    publish("$iothub/methods/res/200/?$rid=42", '{"ok": true}', qos=0),
    publish("devices/python-device-008/messages/events/", "x", qos=0),
    unsubscribe(["$iothub/methods/POST/#"]),
    PUBACK(1),
    PINGREQ,
    DISCONNECT,
]

# mqtt_codec: single packets and whole streams
for p in dps_session + hub_session + [
    connect(REG, f"{SCOPE}/registrations/{REG}/api-version=2019-03-31&ClientVersion=x", DPS_TOKEN),
    connect(DEV, f"{HUB}/{DEV}/?api-version=2021-04-12&DeviceClientType=x", TOKEN),
    connect(DEV, f"{HUB}/{DEV}/m1/?api-version=2021-04-12", TOKEN, keep_alive=0),
    connect("c", None, None, flags=0x0e) + mstr("will/topic")[:0],
]:
    put("mqtt_codec", p)
put("mqtt_codec", b"".join(hub_session))
put("mqtt_codec", b"".join(dps_session))

# mqtt_session: byte 0 = DPS, 1 = hub device (harness sends CONNECT), other = raw stream
put("mqtt_session", b"\x00" + b"".join(dps_session))
put("mqtt_session", b"\x01" + b"".join(hub_session))
for p in hub_session[:5]:
    put("mqtt_session", b"\x01" + p)
put("mqtt_session", b"\x02" + connect(DEV, f"{HUB}/{DEV}/?api-version=2021-04-12", TOKEN) + b"".join(hub_session))
put("mqtt_session", b"\x02" + connect(REG, f"{SCOPE}/registrations/{REG}/api-version=2019-03-31", DPS_TOKEN))

# sas
for t in [
    TOKEN, DPS_TOKEN,
    "SharedAccessSignature sig=abc%2B%3D&se=1700000000&sr=localhost&skn=iothubowner",
    "SharedAccessSignature sr=localhost%2fdevices%2fd1&sig=x&se=01700000000",
    "SharedAccessSignature sr=localhost/devices/d1&se=18446744073709551615&sig=x",
    "sr=a&sig=b&se=1", "localhost/devices/d1/modules/m1", "0ne00000A0A/registrations/r1",
]:
    put("sas", t)

# topic_properties: "filter\ntopic", usernames, property bags
for t in [
    "$iothub/twin/res/#\n$iothub/twin/res/200/?$rid=1&$version=3",
    "devices/+/messages/devicebound/#\ndevices/d1/messages/devicebound/%24.mid=1&%24.to=%2Fdevices%2Fd1&k=v",
    "$dps/registrations/res/#\n$dps/registrations/res/202/?$rid=1&retry-after=3",
    "#\n$iothub/methods/POST/reboot/?$rid=42",
    "devices/d1/messages/events/#\ndevices/d1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&a=b&a&=x",
    "devices/d1/modules/m1/messages/events/\ndevices/d1/modules/m1/messages/events/$.ct=text%2Fplain",
    "$iothub/twin/PATCH/properties/reported/?$rid=9\n$iothub/twin/GET/?$rid=%41",
    "0ne00000A0A/registrations/reg-1/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-devicesdk%2F1",
    "localhost/d1/?api-version=2021-04-12&DeviceClientType=py-azure-iot-device%2F2.0&model-id=dtmi%3Ax%3B1",
    "localhost/d1/m1/?api-version=2021-04-12",
]:
    put("topic_properties", t)

# twin_query (iot-hub-devguide-query-language.md examples)
for q in [
    "SELECT * FROM devices",
    "SELECT * FROM devices WHERE tags.location.region = 'US'",
    "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.connectivity.type = 'cellular'",
    "SELECT COUNT() AS numberOfDevices FROM devices WHERE tags.location.plant IN [43, 44] OR NOT (status = \"disabled\")",
    "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND moduleId != 'm2'",
    "select deviceId, tags.floor from devices where tags.floor >= 2.5e0 and is_defined(tags.on) and startswith(deviceId, 'd')",
    "SELECT * FROM devices WHERE properties.desired.$version < -3 OR version <> 1",
]:
    put("twin_query", q)

# fixtures
with open(os.path.join(ROOT, "fixtures", "quickstart.json")) as f:
    quick = f.read()
put("fixtures", quick)
put("fixtures", json.dumps({
    "dps": {"idScope": "0ne00000B0B", "hostName": "dps.local", "sharedAccessPolicies": [
        {"keyName": "provisioningserviceowner", "primaryKey": "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=",
         "rights": "ServiceConfig, DeviceConnect, EnrollmentWrite"}]},
    "hubs": [{"hostName": "hub2.local", "sharedAccessPolicies": [
        {"keyName": "iothubowner", "primaryKey": "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=",
         "rights": "RegistryWrite, ServiceConnect, DeviceConnect"}]}],
    "enrollments": [{"registrationId": "r2", "deviceId": "d2", "attestation": {"type": "symmetricKey",
        "symmetricKey": {"primaryKey": "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ=="}},
        "initialTwin": {"tags": {"a": 1}, "properties": {"desired": {"b": 2}}}, "provisioningStatus": "enabled"}],
    "enrollmentGroups": [{"enrollmentGroupId": "g1", "attestation": {"type": "symmetricKey",
        "symmetricKey": {"primaryKey": "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g=="}},
        "allocationPolicy": "hashed", "reprovisionPolicy": {"updateHubAssignment": True, "migrateDeviceData": True}}],
}, indent=1))

# http_request: byte = route index (body follows), or credential (line + body), or raw
ENROLLMENT = {"registrationId": "fuzz-enrollment", "attestation": {"type": "symmetricKey"}, "provisioningStatus": "enabled",
              "initialTwin": {"tags": {"t": 1}, "properties": {"desired": {"d": {"e": [1, 2]}}}}, "capabilities": {"iotEdge": False}}
GROUP = {"enrollmentGroupId": "fuzz-group", "attestation": {"type": "symmetricKey"}, "allocationPolicy": "evenlyDistributed"}
bodies = {
    0: {"registrationId": REG, "payload": {"modelId": "dtmi:x;1"}},
    1: {"registrationId": REG},
    2: ENROLLMENT,
    3: GROUP,
    4: {"mode": "create", "enrollments": [dict(ENROLLMENT, registrationId="bulk-1")]},
    5: {"mode": "delete", "enrollmentGroups": [GROUP]},
    6: {"query": "*"},
    7: {"query": "*"},
    8: {"query": "*"},
    9: {},
    10: {"deviceId": "fuzz-device", "status": "enabled", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": None}}},
    11: {"deviceId": "python-device-008", "moduleId": "fuzz-module"},
    12: {"tags": {"a": {"b": 1}}, "properties": {"desired": {"x": 1, "y": None}}},
    13: {"tags": {"a": None}, "properties": {"desired": {"z": {"w": "v"}}}},
    14: {"properties": {"desired": {"m": 1}}},
    15: {"query": "SELECT * FROM devices WHERE tags.a.b = 1"},
    16: {"methodName": "reboot", "payload": {"delay": 1}, "responseTimeoutInSeconds": 5},
    17: {"temperature": 21},
}
for index, body in bodies.items():
    put("http_request", bytes([index]) + json.dumps(body).encode())
ROUTES = 18
line_seeds = [
    (1, "GET /devices/python-device-008?api-version=2021-04-12", ""),
    (1, "GET /twins/python-device-008/modules/fuzz-module?api-version=2021-04-12", ""),
    (1, "DELETE /devices/fuzz-device?api-version=2021-04-12", ""),
    (1, "GET /messages/serviceBound/feedback?api-version=2021-04-12", ""),
    (2, "GET /enrollments/fuzz-enrollment?api-version=2021-10-01", ""),
    (2, "DELETE /enrollmentGroups/fuzz-group?api-version=2021-10-01", ""),
    (2, "GET /registrations/symm-key-python-device-008?api-version=2021-10-01", ""),
    (3, "GET /devices/python-device-008/messages/deviceBound?api-version=2021-04-12", ""),
    (4, "GET /0ne00000A0A/registrations/symm-key-python-device-008/operations/4.abc.0?api-version=2021-06-01", ""),
    (0, "PUT /0ne00000A0A/registrations/x/register?api-version=2021-06-01", '{"registrationId":"x"}'),
]
for who, line, body in line_seeds:
    put("http_request", bytes([ROUTES + who]) + (line + "\n" + body).encode())
raw = ("GET /$iothub/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
put("http_request", b"\xff" + raw.encode())
put("http_request", b"\xff" + b"GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    b"POST /devices/query HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n")

# store_recovery: see the target's doc comment
def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def header(kind, generation):
    h = b"iotemudb" + struct.pack("<IIQ", 1, kind, generation)
    return h + struct.pack("<I", crc(h))


def frame(payload):
    h = struct.pack("<II", len(payload), crc(payload))
    return h + struct.pack("<I", crc(h)) + payload


put_op = lambda c, k, v: {"put": {"c": c, "k": k, "v": v}}
log_payloads = [
    json.dumps({"batch": [[put_op("hub:localhost:devices", "d1", {"deviceId": "d1", "etag": "x"})]]}),
    json.dumps({"batch": [[put_op("dps:enrollments", "e1", {"registrationId": "e1"}),
                           {"delete": {"c": "dps:enrollments", "k": "e0"}}], [put_op("emulator", "ca", "pem")]]}),
]
snap_payloads = [json.dumps({"entries": [put_op("dps:registrations", "r1", {"status": "assigned"})]}),
                 json.dumps({"end": {"entries": 1}})]
put("store_recovery", b"\x00" + header(2, 0) + b"".join(frame(p.encode()) for p in log_payloads))
put("store_recovery", b"\x02" + header(1, 3) + b"".join(frame(p.encode()) for p in snap_payloads)
    + b"\n--\n" + header(2, 3) + frame(log_payloads[0].encode()) + b"\x07\x00\x00")
put("store_recovery", b"\x01" + "\n".join(snap_payloads).encode() + b"\n--\n" + "\n".join(log_payloads).encode())
put("store_recovery", b"\x03" + json.dumps({"end": {"entries": 0}}).encode() + b"\n--\n" + log_payloads[1].encode())

# x509: PEM text, NUL, DER
certs = None
if "--certs" in sys.argv:
    certs = sys.argv[sys.argv.index("--certs") + 1]
if certs:
    import base64, re
    def pem_ders(text):
        return [base64.b64decode("".join(m.split())) for m in
                re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)]
    read = lambda n: open(os.path.join(certs, n)).read()
    root, inter, dev = read("root-ca.pem"), read("inter.pem"), read("dev1-full-chain.pem")
    put("x509", dev.encode() + root.encode() + b"\x00" + pem_ders(root)[0])
    put("x509", inter.encode() + b"\x00" + pem_ders(root)[0])
    put("x509", base64.b64encode(pem_ders(read("self1.pem"))[0]) + b"\x00")
    put("x509", pem_ders(dev)[0] + b"\x00" + pem_ders(inter)[0])
    put("x509", b"3D:8C:AB:00:ff:01\x00")
