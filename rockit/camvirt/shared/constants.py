"""Status codes shared by camvirtd and camvirt, and the messages the client prints for them."""


class CommandStatus:
    """Return codes of initialize() and shutdown(); the rockit operations daemon knows 0, 1, 2, 10."""
    Succeeded = 0
    Failed = 1
    Blocked = 2
    UnknownDomain = 3
    InvalidArguments = 3  # domains or force of the wrong shape, as for an unknown domain
    LibvirtUnavailable = 4
    InvalidControlIP = 10
    CommunicationError = -101

    _messages = {
        0: 'command completed successfully',
        1: 'command failed',
        2: 'another command is already running',
        3: 'invalid arguments (unknown domain name or malformed request)',
        4: 'libvirt is unreachable',
        10: 'command not accepted from this IP',
        -101: 'unable to communicate with camvirt daemon',
    }

    @classmethod
    def message(cls, code):
        return cls._messages.get(code, 'unknown error code {}'.format(code))


class CameraState:
    """camd's report_status()['state'] values, as the rockit camera daemons define them."""
    Disabled = 0
    Initializing = 1
    Idle = 2
    Waiting = 3
    Acquiring = 4
    Reading = 5
    Aborting = 6

    Labels = {
        0: 'OFFLINE',
        1: 'INITIALIZING',
        2: 'IDLE',
        3: 'WAITING',
        4: 'EXPOSING',
        5: 'READING',
        6: 'ABORTING',
    }

    @classmethod
    def label(cls, state):
        """The state's name; UNKNOWN for anything else a camd may send (any type, hashable or not)."""
        if isinstance(state, bool) or not isinstance(state, int):
            return 'UNKNOWN'
        return cls.Labels.get(state, 'UNKNOWN')


# The reply the dashboard treats as "camera offline"; it must stay exactly this on the wire.
OFFLINE_CAMERA_STATUS = {'state': CameraState.Disabled, 'vm_active': False}


class VMState:
    """Our names for a libvirt domain's state, as report_status() gives them."""
    Running = 'running'
    Paused = 'paused'
    ShuttingDown = 'shutting down'
    ShutOff = 'shut off'
    Crashed = 'crashed'
    Suspended = 'pm suspended'
    Missing = 'missing'
    Unknown = 'unknown'

    # Each set of states that decides something, defined here once:
    # the guest is in memory: a shutdown waits until the domain has left these.
    UP = frozenset([Running, ShuttingDown, Paused])
    # camd may answer, so a status query asks it. Unknown (libvirt unreachable, or the state not read
    # yet) is in: then camd itself is the best witness of whether its VM runs.
    PROBED = frozenset([Running, ShuttingDown, Unknown])
    # a domain that camvirtd expects to run has stopped (Unknown is not: it says nothing of the VM).
    STOPPED = frozenset([ShutOff, Crashed, Missing])
