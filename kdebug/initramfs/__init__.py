"""Build initramfs archives and root images from recipes in ``launch/initramfs``."""
