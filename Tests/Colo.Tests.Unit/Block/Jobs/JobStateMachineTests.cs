using Colo.Block.Jobs;

namespace Colo.Tests.Unit.Block.Jobs;

[TestFixture]
public sealed class JobStateMachineTests
{
    [TestCase(JobStatus.Created, JobStatus.Running)]
    [TestCase(JobStatus.Running, JobStatus.Ready)]
    [TestCase(JobStatus.Ready, JobStatus.Waiting)]
    [TestCase(JobStatus.Waiting, JobStatus.Pending)]
    [TestCase(JobStatus.Pending, JobStatus.Concluded)]
    [TestCase(JobStatus.Concluded, JobStatus.Null)]
    [TestCase(JobStatus.Running, JobStatus.Aborting)]
    [TestCase(JobStatus.Aborting, JobStatus.Concluded)]
    [TestCase(JobStatus.Ready, JobStatus.Standby)]
    [TestCase(JobStatus.Standby, JobStatus.Ready)]
    [TestCase(JobStatus.Running, JobStatus.Paused)]
    [TestCase(JobStatus.Paused, JobStatus.Running)]
    public void CanTransition_QemuLifeCycleStep_Allowed(JobStatus from, JobStatus to) =>
        Assert.That(JobStateMachine.CanTransition(from, to), Is.True);

    [TestCase(JobStatus.Created, JobStatus.Ready)]
    [TestCase(JobStatus.Running, JobStatus.Concluded)]
    [TestCase(JobStatus.Ready, JobStatus.Running)]
    [TestCase(JobStatus.Concluded, JobStatus.Running)]
    [TestCase(JobStatus.Null, JobStatus.Created)]
    [TestCase(JobStatus.Paused, JobStatus.Ready)]
    public void CanTransition_SkippingOrBackwards_Refused(JobStatus from, JobStatus to) =>
        Assert.That(JobStateMachine.CanTransition(from, to), Is.False);

    [Test]
    public void Accepts_Complete_OnlyWhenReady()
    {
        foreach (JobStatus s in Enum.GetValues<JobStatus>())
        {
            Assert.That(JobStateMachine.Accepts(s, JobVerb.Complete), Is.EqualTo(s == JobStatus.Ready), s.ToString());
        }
    }

    [Test]
    public void Accepts_DismissAndFinalize_OnlyInConcludedAndPending()
    {
        foreach (JobStatus s in Enum.GetValues<JobStatus>())
        {
            Assert.That(JobStateMachine.Accepts(s, JobVerb.Dismiss), Is.EqualTo(s == JobStatus.Concluded), s.ToString());
            Assert.That(JobStateMachine.Accepts(s, JobVerb.Finalize), Is.EqualTo(s == JobStatus.Pending), s.ToString());
        }
        Assert.That(JobStateMachine.Accepts(JobStatus.Aborting, JobVerb.Cancel), Is.False);
        Assert.That(JobStateMachine.Accepts(JobStatus.Pending, JobVerb.Cancel), Is.True);
    }

    [Test]
    public void Name_QapiSpellings()
    {
        Assert.That(JobStateMachine.Name(JobStatus.Concluded), Is.EqualTo("concluded"));
        Assert.That(JobStateMachine.Name(JobVerb.SetSpeed), Is.EqualTo("set-speed"));
        Assert.That(JobStateMachine.Name(JobVerb.Complete), Is.EqualTo("complete"));
    }
}
