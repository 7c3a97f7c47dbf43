"""Scenario dps_throttle_websocket, Python: dps_throttle's steps over MQTT over WebSocket
(`websockets=True`: wss on 443, `/$iothub/websocket`, subprotocol mqtt). The refusals travel
the same MQTT topics inside the WebSocket, and azure-iot-device 2.14.0 retries them the same
way: the 429 + retry-after 5 on register is retried after the 5 s, the 503 on the poll is
polled again; both rules hit once; every DPS session of the device came over WebSocket (the
emulator log).
"""

import dps_throttle
import harness


async def main(scenario):
    offset = harness.log_offset()
    await dps_throttle.throttle_flow(scenario, websockets=True)
    harness.expect_websocket_sessions(scenario, offset, harness.env("PROVISIONING_REGISTRATION_ID"))


if __name__ == "__main__":
    scenario = harness.Scenario("dps_throttle_websocket")
    scenario.run(lambda: main(scenario))
