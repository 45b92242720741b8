#!/usr/bin/python3
"""A local RTSP camera for tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0)
streaming a folder of JPEG frames (frame-00000.jpg …) in a loop as RTP/JPEG.

Runs under the system Python (it needs Debian's python3-gi, not the project's venv):
    /usr/bin/python3 scripts/rtsp_server.py --frames DIR --port 8554 --fps 10
The stream is rtsp://127.0.0.1:PORT/store. SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", required=True, help="folder with frame-%%05d.jpg")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--once", action="store_true", help="play the frames once, then end")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    source = (
        f"multifilesrc location={args.frames}/frame-%05d.jpg loop={'false' if args.once else 'true'} "
        f'caps="image/jpeg,framerate={args.fps}/1"'
    )
    if args.once:
        # played once, paced by the clock: decoded and re-timed, or every frame would go at once
        pipeline = (
            f"{source} ! jpegdec ! videorate ! video/x-raw,framerate={args.fps}/1 ! clocksync "
            "! jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26"
        )
    else:
        pipeline = f"{source} ! jpegparse ! identity sync=true ! rtpjpegpay name=pay0 pt=26"
    factory.set_launch(f"( {pipeline} )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/store", factory)
    if server.attach(None) == 0:
        sys.stderr.write(f"cannot listen on 127.0.0.1:{args.port}\n")
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    sys.stdout.write(f"rtsp://127.0.0.1:{args.port}/store\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
