import sys, struct, time, socket, json
sys.path.insert(0, __import__('os').path.dirname(__file__))
from qtest import Q, QMP
q = Q(['-usb','-device','usb-tablet,id=t'])
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX); s.connect(QMP); f = s.makefile('rw')
def qmp(cmd, **args):
    f.write(json.dumps({'execute':cmd,'arguments':args})+'\n'); f.flush()
    while True:
        r = json.loads(f.readline())
        if 'return' in r or 'error' in r: return r
f.readline(); qmp('qmp_capabilities')
DEV = (1<<3)|2
q.cfgw(DEV,0x20,0xc000); q.cfgw(DEV,4,5,2)
B=0xc000
def r16(o): return q.v('inw 0x%x'%(B+o))
def w16(o,v): q.cmd('outw 0x%x 0x%x'%(B+o,v))
def w32(a,v): q.cmd('writel 0x%x 0x%x'%(a,v))
def r32(a): return q.v('readl 0x%x'%a)
w16(0x10,0x000a); w16(0x10,0x0200); w16(0x10,0); w16(0x10,4)
FL=0x100000; QH=0x101000
for i in range(1024): w32(FL+4*i, QH|2)
w32(QH,1); w32(QH+4,1)
q.cmd('outl 0x%x 0x%x'%(B+8,FL))
w16(4,0xf)
w16(0,0xc1)
print(qmp('cont'))
time.sleep(0.05)
print('running sts %04x frnum %04x p1 %04x'%(r16(2),r16(6),r16(0x10)))
TD=0x102000; BUF=0x110000
def td(i, link, status, token, buf):
    a=TD+32*i; w32(a,link); w32(a+4,status); w32(a+8,token); w32(a+12,buf)
def tok(pid, addr, ep, toggle, n):
    ml = 0x7ff if n==0 else n-1
    return (ml<<21)|(toggle<<19)|(ep<<15)|(addr<<8)|pid
ACT=1<<23; CERR=3<<27; IOC=1<<24
def run_chain(n):
    w32(QH+4, TD)
    for _ in range(100):
        time.sleep(0.005)
        if r32(QH+4) & 1: break
    res=[]
    for i in range(n):
        a=TD+32*i; res.append((r32(a+4), r32(a+8)))
    w32(QH+4,1)
    return res
def control(addr, setup, length, mps=8, out=None):
    q.wr(BUF, setup)
    tds=[]
    tds.append((ACT|CERR, tok(0x2d,addr,0,0,8), BUF))
    t=1; off=0
    if out is None and length == 0:
        tds.append((ACT|CERR|IOC, tok(0x69,addr,0,1,0), 0))
    elif out is not None:
        q.wr(BUF+0x100, out)
        while off < len(out):
            n=min(mps,len(out)-off); tds.append((ACT|CERR, tok(0xe1,addr,0,t,n), BUF+0x100+off)); off+=n; t^=1
        tds.append((ACT|CERR|IOC, tok(0x69,addr,0,1,0), 0))
    else:
        while off < length:
            n=min(mps,length-off); tds.append((ACT|CERR|(1<<29), tok(0x69,addr,0,t,n), BUF+0x100+off)); off+=n; t^=1
        tds.append((ACT|CERR|IOC, tok(0xe1,addr,0,1,0), 0))
    for i,(st,tk,b) in enumerate(tds):
        link = (TD+32*(i+1))|4 if i+1 < len(tds) else 1
        td(i, link, st, tk, b)
    res = run_chain(len(tds))
    got=b''
    for i,(st,tk) in enumerate(res[1:-1] if out is None else []):
        if st & ACT: break  # the queue stopped (short packet with SPD, or an error)
        al = (st+1)&0x7ff
        got += q.rd(BUF+0x100+mps*i, al) if al else b''
    return got, ['%08x'%r[0] for r in res]
def show(name, r): print(name, r[0].hex(), r[1])
show('dev', control(0, bytes([0x80,6,0,1,0,0,18,0]), 18))
show('cfg9', control(0, bytes([0x80,6,0,2,0,0,9,0]), 9))
show('cfgall', control(0, bytes([0x80,6,0,2,0,0,255,0]), 64))
for i in range(0, 13):
    show('str%d'%i, control(0, bytes([0x80,6,i,3,9 if i else 0,4 if i else 0,255,0]), 64))
show('qual', control(0, bytes([0x80,6,0,6,0,0,10,0]), 10))
show('other', control(0, bytes([0x80,6,0,7,0,0,64,0]), 64))
show('devstatus', control(0, bytes([0x80,0,0,0,0,0,2,0]), 2))
show('ifstatus', control(0, bytes([0x81,0,0,0,0,0,2,0]), 2))
show('epstatus', control(0, bytes([0x82,0,0,0,0x81,0,2,0]), 2))
show('getcfg', control(0, bytes([0x80,8,0,0,0,0,1,0]), 1))
show('setaddr', control(0, bytes([0,5,5,0,0,0,0,0]), 0))
show('dev@0', control(0, bytes([0x80,6,0,1,0,0,18,0]), 18))
show('dev@5', control(5, bytes([0x80,6,0,1,0,0,18,0]), 18))
show('setcfg', control(5, bytes([0,9,1,0,0,0,0,0]), 0))
show('getcfg', control(5, bytes([0x80,8,0,0,0,0,1,0]), 1))
show('getif', control(5, bytes([0x81,10,0,0,0,0,1,0]), 1))
show('devstatus', control(5, bytes([0x80,0,0,0,0,0,2,0]), 2))
show('hiddesc', control(5, bytes([0x81,6,0,0x21,0,0,9,0]), 9))
show('report', control(5, bytes([0x81,6,0,0x22,0,0,0x80,0]), 0x80))
show('getreport', control(5, bytes([0xa1,1,0,1,0,0,6,0]), 6))
show('getidle', control(5, bytes([0xa1,2,0,0,0,0,1,0]), 1))
show('getproto', control(5, bytes([0xa1,3,0,0,0,0,1,0]), 1))
show('setidle', control(5, bytes([0x21,0x0a,0,0,0,0,0,0]), 0))
show('setproto', control(5, bytes([0x21,0x0b,1,0,0,0,0,0]), 0))
show('bogus', control(5, bytes([0x80,0x33,0,0,0,0,2,0]), 2))
show('setfeat-rw', control(5, bytes([0,3,1,0,0,0,0,0]), 0))
show('devstatus', control(5, bytes([0x80,0,0,0,0,0,2,0]), 2))
def intr(toggle):
    td(0, 1, ACT|CERR|(1<<29)|IOC, tok(0x69,5,1,toggle,8), BUF+0x200)
    r = run_chain(1)
    st=r[0][0]; al=(st+1)&0x7ff
    return ('%08x'%st, q.rd(BUF+0x200, al).hex() if al and not st&ACT else '')
print('sts before intr %04x'%r16(2)); w16(2,0x3f)
print('intr idle', intr(0))
print(qmp('input-send-event', events=[{'type':'abs','data':{'axis':'x','value':0x1234}},{'type':'abs','data':{'axis':'y','value':0x5678}}]))
time.sleep(0.05)
print('intr moved', intr(0), 'sts %04x'%r16(2))
print('intr again', intr(1))
print(qmp('input-send-event', events=[{'type':'btn','data':{'button':'left','down':True}},{'type':'btn','data':{'button':'wheel-up','down':True}}]))
print(qmp('input-send-event', events=[{'type':'btn','data':{'button':'wheel-up','down':False}}]))
print('intr btn', intr(1)); print('intr btn2', intr(0)); print('intr btn3', intr(1))
print(qmp('input-send-event', events=[{'type':'btn','data':{'button':'right','down':True}},{'type':'btn','data':{'button':'middle','down':True}},{'type':'btn','data':{'button':'wheel-down','down':True}}]))
print('intr btn', intr(1)); print('intr btn2', intr(0))
show('getreport', control(5, bytes([0xa1,1,0,1,0,0,6,0]), 6))
print('final sts %04x frnum %04x'%(r16(2),r16(6)))
