"""The microVM tier: each box in a fresh QEMU microvm booting Debian's kernel, the image's
layers as read-only erofs disks, a guest agent applying the box's limits inside."""
