"""``python -m kubenat`` is the ``kubenat`` command."""

from kubenat.cli import main

main()
