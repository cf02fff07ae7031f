"""Drives QEMU 7.2's piix3-usb-uhci through qtest port/memory commands (no guest code): a stand-in firmware that
only halts, the VM stopped at start (-S) while registers are probed, then resumed over QMP so the 1 ms frame
timer runs. Used to capture the expected values in Piix3UhciTests/UsbTabletTests. Run: python3 tablet.py"""
import os, tempfile
_dir = tempfile.mkdtemp(prefix='uhci-capture-')
HLT = os.path.join(_dir, 'hlt.bin')
QMP = os.path.join(_dir, 'qmp.sock')
_b = bytearray(b'\xf4' * 65536)
_b[0xfff0:0xfff4] = b'\xfa\xf4\xeb\xfd'  # cli; hlt; jmp $-1 at the reset vector
open(HLT, 'wb').write(_b)
import subprocess, sys
class Q:
    def __init__(self, extra):
        self.p = subprocess.Popen(['qemu-system-x86_64','-machine','pc','-accel','tcg','-bios',HLT,'-S','-qmp','unix:'+QMP+',server=on,wait=off','-qtest','stdio','-display','none','-nodefaults','-m','64']+extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        # qtest keeps QEMU alive after the script ends; stop it explicitly.
        __import__('atexit').register(self.p.kill)
    def cmd(self, c):
        self.p.stdin.write(c+'\n'); self.p.stdin.flush()
        while True:
            l = self.p.stdout.readline().strip()
            if l.startswith('OK') or l.startswith('FAIL') or l.startswith('ERR'):
                return l
    def v(self, c):
        r = self.cmd(c).split()
        return int(r[1],16) if len(r)>1 else None
    def cfgr(self, dev, off, size=4):
        self.cmd('outl 0xcf8 0x%x' % (0x80000000 | (dev<<8) | (off & ~3)))
        if size==4: return self.v('inl 0xcfc')
        if size==2: return self.v('inw 0x%x' % (0xcfc + (off&2)))
        return self.v('inb 0x%x' % (0xcfc + (off&3)))
    def cfgw(self, dev, off, val, size=4):
        self.cmd('outl 0xcf8 0x%x' % (0x80000000 | (dev<<8) | (off & ~3)))
        if size==4: self.cmd('outl 0xcfc 0x%x' % val)
        elif size==2: self.cmd('outw 0x%x 0x%x' % (0xcfc+(off&2), val))
        else: self.cmd('outb 0x%x 0x%x' % (0xcfc+(off&3), val))
    def rd(self, a, n):
        r = self.cmd('read 0x%x %d' % (a, n)).split()[1]
        return bytes.fromhex(r[2:])
    def wr(self, a, b):
        self.cmd('write 0x%x %d 0x%s' % (a, len(b), b.hex()))
