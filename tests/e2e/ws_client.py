#!/usr/bin/python3
"""A WebSocket client of kapal's streaming server, written with Debian's python3-websocket (an
implementation independent of ours), for the end-to-end tests.

  ws_client.py exec URL [--protocol P] [--stdin TEXT] [--resize COLSxROWS] [--drop-after SECONDS]

Prints one JSON line: {"protocol", "stdout", "stderr", "status"}; --drop-after closes the socket
without a close frame after SECONDS (a client that vanishes)."""
import argparse
import base64
import json
import socket
import ssl
import sys
import time

import websocket


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["exec"])
    parser.add_argument("url")
    parser.add_argument("--protocol", default="v5.channel.k8s.io")
    parser.add_argument("--stdin", default=None)
    parser.add_argument("--drop-after", type=float, default=None)
    parser.add_argument("--resize", default=None, help="COLSxROWS sent on the resize channel")
    args = parser.parse_args()
    # https: kapald's self-signed certificate, not verified (as crictl and kubelet do).
    url = args.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    try:
        ws = websocket.create_connection(url, subprotocols=[args.protocol], timeout=30,
                                         sslopt={"cert_reqs": ssl.CERT_NONE})
    except websocket.WebSocketBadStatusException as error:
        print(json.dumps({"http_status": error.status_code}))
        return
    base64_mode = "base64" in args.protocol
    out = {"protocol": ws.getsubprotocol(), "stdout": "", "stderr": "", "status": ""}

    def send(channel, data):
        if base64_mode:
            ws.send(str(channel) + base64.b64encode(data).decode())
        else:
            ws.send_binary(bytes([channel]) + data)

    if args.resize is not None:
        columns, rows = (int(part) for part in args.resize.split("x"))
        send(4, json.dumps({"Width": columns, "Height": rows}).encode())
    if args.stdin is not None:
        send(0, args.stdin.encode())
        if args.protocol == "v5.channel.k8s.io":
            ws.send_binary(bytes([255, 0]))  # v5: stdin is closed
    if args.drop_after is not None:
        time.sleep(args.drop_after)
        ws.sock.shutdown(socket.SHUT_RDWR)
        ws.sock.close()
        print(json.dumps({"dropped": True}))
        return
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            opcode, data = ws.recv_data(control_frame=False)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if not data:
            continue
        if base64_mode:
            channel, data = data[0] - ord("0"), base64.b64decode(data[1:])
        else:
            channel, data = data[0], data[1:]
        text = data.decode(errors="replace")
        if channel == 1:
            out["stdout"] += text
        elif channel == 2:
            out["stderr"] += text
        elif channel == 3:
            out["status"] += text
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
