//! flannel's overlays: the UDP backend (port 8285) and the VXLAN backend (port 8472).
