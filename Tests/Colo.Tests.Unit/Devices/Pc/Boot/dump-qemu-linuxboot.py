#!/usr/bin/env python3
# Dumps what QEMU 7.2 publishes in fw_cfg for `-kernel BZIMAGE -initrd INITRD -append CMDLINE` (SETUP_DATA, CMDLINE_DATA,
# INITRD_DATA, KERNEL_DATA as qemu-*.bin in the current directory), reading it over qtest with the fw_cfg DMA interface.
# LinuxBootLoaderTests.ConfigureFwCfg_DebianKernel_MatchesQemu compares against these files when
# COLO_TEST_QEMU_LINUXBOOT_DUMP names the directory (and COLO_TEST_BZIMAGE the same kernel).
# Usage: dump-qemu-linuxboot.py BZIMAGE INITRD   (command line "console=ttyS0 quiet foo=bar", -m 128M)
import subprocess,struct,sys,base64
args=['qemu-system-x86_64','-machine','pc','-m','128M','-display','none','-nodefaults','-qtest','stdio','-qtest-log','/dev/null','-S',
 '-kernel',sys.argv[1],'-append','console=ttyS0 quiet foo=bar','-initrd',sys.argv[2]]
p=subprocess.Popen(args,stdin=subprocess.PIPE,stdout=subprocess.PIPE,stderr=subprocess.DEVNULL,text=True)
def cmd(c):
    p.stdin.write(c+'\n'); p.stdin.flush()
    while True:
        l=p.stdout.readline()
        if not l: raise Exception('eof')
        if l.startswith('OK') or l.startswith('FAIL') or l.startswith('ERR'): return l.strip()
def dma_read(key,n):
    desc=struct.pack('>IIQ',(key<<16)|0x08|0x02,n,0x200000)
    cmd('write 0x1000 16 0x'+desc.hex())
    cmd('outl 0x514 0'); cmd('outl 0x518 0x%x'%struct.unpack('<I',struct.pack('>I',0x1000))[0])
    ctl=cmd('read 0x1000 4')
    out=b''
    for o in range(0,n,65536):
        m=min(65536,n-o); r=cmd('b64read 0x%x %d'%(0x200000+o,m)); out+=base64.b64decode(r.split()[1])
    return ctl,out
for k in [7,8,0xa,0xb,0x13,0x14,0x16,0x17]:
    c,d=dma_read(k,4); print(hex(k),hex(struct.unpack('<I',d)[0]))
size=lambda k: struct.unpack('<I',dma_read(k,4)[1])[0]
for k,name in [(0x18,'setup'),(0x15,'cmdline'),(0x12,'initrd'),(0x11,'kernel')]:
    sz={0x18:size(0x17),0x15:size(0x14),0x12:size(0xb),0x11:size(8)}[k]
    c,d=dma_read(k,sz); open('qemu-'+name+'.bin','wb').write(d); print(name,sz,c)
c,d=dma_read(0x19,4); n=struct.unpack('>I',d)[0]; c,d=dma_read(0x19,4+64*n)
for i in range(n): e=d[4+64*i:68+64*i]; print(hex(struct.unpack('>H',e[4:6])[0]),struct.unpack('>I',e[:4])[0],e[8:].split(b'\0')[0].decode())
p.kill()
