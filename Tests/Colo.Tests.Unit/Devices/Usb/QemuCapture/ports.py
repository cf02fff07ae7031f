import sys, time
sys.path.insert(0, __import__('os').path.dirname(__file__))
from qtest import Q
q = Q(['-usb','-device','usb-tablet'])
DEV=(1<<3)|2
q.cfgw(DEV,0x20,0xc000); q.cfgw(DEV,4,5,2)
B=0xc000
def r16(o): return q.v('inw 0x%x'%(B+o))
def w16(o,v): q.cmd('outw 0x%x 0x%x'%(B+o,v))
def regs(t): print(t, 'cmd %04x sts %04x p1 %04x'%(r16(0),r16(2),r16(0x10)))
w16(0x10,0xa); w16(0x10,4); regs('enabled')
w16(0x10,0x204); regs('PR|PE'); w16(0x10,0x4); regs('release keep PE')
w16(0x10,0x200); regs('PR only'); w16(0x10,0); regs('released')
w16(0x10,4); w16(0,2); regs('after HCRESET')
w16(0x10,0xa); w16(0x10,4); w16(0,4); regs('GRESET'); w16(0,0); regs('GRESET cleared')
w16(0x10,0xa); w16(0x10,0x1004); regs('suspend'); 
