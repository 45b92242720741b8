"""visitlens edge worker: cameras → detect → track → staff filter → face.detected events, through
a disk queue that loses nothing. Runs unattended on the store's Mac Mini."""

__version__ = "0.1.0"
