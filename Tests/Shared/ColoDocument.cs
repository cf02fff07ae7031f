namespace Colo.Tests.Shared;

/// <summary>
/// The primary and secondary command lines of QEMU 7.2's COLO document (docs/COLO-FT.txt), as argv,
/// with $imagefolder and $primary_ip substituted.
/// </summary>
internal static class ColoDocument
{
    public static string[] Primary(string imageFolder) =>
    [
        "-enable-kvm", "-cpu", "qemu64,kvmclock=on", "-m", "512", "-smp", "1", "-qmp", "stdio",
        "-device", "piix3-usb-uhci", "-device", "usb-tablet", "-name", "primary",
        "-netdev", "tap,id=hn0,vhost=off,helper=/usr/lib/qemu/qemu-bridge-helper",
        "-device", "rtl8139,id=e0,netdev=hn0",
        "-chardev", "socket,id=mirror0,host=0.0.0.0,port=9003,server=on,wait=off",
        "-chardev", "socket,id=compare1,host=0.0.0.0,port=9004,server=on,wait=on",
        "-chardev", "socket,id=compare0,host=127.0.0.1,port=9001,server=on,wait=off",
        "-chardev", "socket,id=compare0-0,host=127.0.0.1,port=9001",
        "-chardev", "socket,id=compare_out,host=127.0.0.1,port=9005,server=on,wait=off",
        "-chardev", "socket,id=compare_out0,host=127.0.0.1,port=9005",
        "-object", "filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0",
        "-object", "filter-redirector,netdev=hn0,id=redire0,queue=rx,indev=compare_out",
        "-object", "filter-redirector,netdev=hn0,id=redire1,queue=rx,outdev=compare0",
        "-object", "iothread,id=iothread1",
        "-object", "colo-compare,id=comp0,primary_in=compare0-0,secondary_in=compare1,outdev=compare_out0,iothread=iothread1",
        "-drive", $"if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename={imageFolder}/primary.qcow2,children.0.driver=qcow2",
        "-S",
    ];

    public static string[] Secondary(string imageFolder, string primaryIp) =>
    [
        "-enable-kvm", "-cpu", "qemu64,kvmclock=on", "-m", "512", "-smp", "1", "-qmp", "stdio",
        "-device", "piix3-usb-uhci", "-device", "usb-tablet", "-name", "secondary",
        "-netdev", "tap,id=hn0,vhost=off,helper=/usr/lib/qemu/qemu-bridge-helper",
        "-device", "rtl8139,id=e0,netdev=hn0",
        "-chardev", $"socket,id=red0,host={primaryIp},port=9003,reconnect=1",
        "-chardev", $"socket,id=red1,host={primaryIp},port=9004,reconnect=1",
        "-object", "filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0",
        "-object", "filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1",
        "-object", "filter-rewriter,id=rew0,netdev=hn0,queue=all",
        "-drive", $"if=none,id=parent0,file.filename={imageFolder}/primary.qcow2,driver=qcow2",
        "-drive", $"if=none,id=childs0,driver=replication,mode=secondary,file.driver=qcow2,top-id=colo-disk0,file.file.filename={imageFolder}/secondary-active.qcow2,file.backing.driver=qcow2,file.backing.file.filename={imageFolder}/secondary-hidden.qcow2,file.backing.backing=parent0",
        "-drive", "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0",
        "-incoming", "tcp:0.0.0.0:9998",
    ];
}
