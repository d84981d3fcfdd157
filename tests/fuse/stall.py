#!/usr/bin/python3
"""A read-only passthrough FUSE file system over SOURCE at MOUNTPOINT whose
reads hang while the file FLAG exists: a drive that stalls instead of
failing, for eddy's drive-fault tests (tests/it/drives.rs).

usage: stall.py SOURCE MOUNTPOINT FLAG   (runs in the foreground; needs
Debian's python3-fusepy and /dev/fuse)"""

import errno
import os
import sys
import time

from fusepy import FUSE, FuseOSError, Operations


class Stall(Operations):
    def __init__(self, source, flag):
        self.source = source
        self.flag = flag

    def _p(self, path):
        return os.path.join(self.source, path.lstrip("/"))

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._p(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ("st_mode", "st_size", "st_uid", "st_gid", "st_nlink",
                "st_atime", "st_mtime", "st_ctime", "st_ino")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        return os.open(self._p(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        while os.path.exists(self.flag):
            time.sleep(0.05)
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)

    def getxattr(self, path, name, position=0):
        try:
            return os.getxattr(self._p(path), name)
        except OSError:
            raise FuseOSError(errno.ENODATA)

    def listxattr(self, path):
        return os.listxattr(self._p(path))

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}


if __name__ == "__main__":
    source, mountpoint, flag = sys.argv[1:4]
    FUSE(Stall(source, flag), mountpoint, foreground=True, nothreads=False, ro=True)
