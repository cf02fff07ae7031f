// Colo runs on Linux hosts (KVM, tap, /proc); the platform analyzer holds it to that.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
