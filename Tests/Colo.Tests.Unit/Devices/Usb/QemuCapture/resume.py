import sys, time, socket, json
sys.path.insert(0, __import__('os').path.dirname(__file__))
from qtest import Q, QMP
q = Q(['-usb'])
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX); s.connect(QMP); f = s.makefile('rw')
def qmp(cmd, **args):
    f.write(json.dumps({'execute':cmd,'arguments':args})+'\n'); f.flush()
    while True:
        r = json.loads(f.readline())
        if 'return' in r or 'error' in r: return r
f.readline(); qmp('qmp_capabilities')
DEV=(1<<3)|2
q.cfgw(DEV,0x20,0xc000); q.cfgw(DEV,4,5,2)
B=0xc000
def r16(o): return q.v('inw 0x%x'%(B+o))
def w16(o,v): q.cmd('outw 0x%x 0x%x'%(B+o,v))
def regs(t): print(t, 'cmd %04x sts %04x p1 %04x p2 %04x'%(r16(0),r16(2),r16(0x10),r16(0x12)))
w16(0,0x08); regs('egsm')
print(qmp('device_add', driver='usb-tablet', id='t1'))
regs('after attach')
w16(2,0x3f); w16(0,0); w16(0x10,0xa); w16(0x10,4); regs('enabled')
print(qmp('device_del', id='t1')); time.sleep(0.2)
regs('after detach (running? no)')
w16(0x10,0xa)
w16(0,0x08)
print(qmp('device_add', driver='usb-tablet', id='t2', port='2'))
regs('attach port2 egsm')
w16(0,0x08|0x10); regs('egsm fgr'); w16(0,0x0); regs('cleared')
w16(0x12, 0x1004); regs('p2 suspend, enable'); w16(0x12,0x0040); regs('p2 RD write')
