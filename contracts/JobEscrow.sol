// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title JobEscrow: holds a compute job's reward until the result is accepted, finalized,
///        arbitrated or refunded.
/// @notice One escrow per marketplace node (its ASSIGNER is that node's key). Jobs are keyed
///         by the node's job id: `jobKey = bytes32(uint256(n))` for the node's `job_<n>`
///         (Python: `marketplace.escrow.job_key`). The key is the number itself, not a hash:
///         every transaction carries it, and calldata costs 4 gas per zero byte against 16
///         per non-zero byte, so a small job number saves ~370 gas in each of fund, bind,
///         submit and settle. Settling deletes the record, so a key that was refunded
///         (cancelled, expired, rejected) can be funded again for a retry.
///
/// Lifecycle
///   fund (requester, pays) -> Open
///   assign (sent by the node's assigner key when it leases the job) -> Bound
///   bind (an assignment voucher signed by the assigner key, relayed by anyone) -> Bound
///   abandon (provider) -> Open again; a later voucher with a higher attempt may also rebind
///   submit (bound provider, before the deadline, result digest) -> Submitted
///   submitWithVoucher (provider named by a voucher: bind + submit in one transaction)
///   accept (requester)                       -> settled (provider paid at once)
///   dispute (requester, within the window)   -> Disputed
///   resolve (arbiter, within ARBITRATION_WINDOW, provider share in bps) -> settled
///   finalize (anyone, after the challenge window, or after the arbitration window with
///             no ruling: the DEFAULT RULE pays the provider in full)        -> settled
///   cancel (requester, while no provider is bound)                          -> settled
///   refundExpired (anyone, deadline passed without a result)                -> settled
///   reject (assigner, while no provider was ever bound: refund the funder)  -> None
///   Every settlement deletes the record (status back to None); `JobSettled` says how.
///
/// Design decisions
/// - Binding is the node's decision, not a first-come on-chain claim. The node already
///   decides who works on a job (leases with expiry, reaping, re-assignment with a fencing
///   attempt counter). A plain on-chain claim would give the chain a second, competing
///   scheduler: a provider could claim on-chain a job the node leased to someone else. So
///   the chain only accepts assignments from the ASSIGNER fixed at deployment, for this
///   job, with an attempt number strictly above the last one used (the node's fencing
///   token), before the job's deadline. When the node reaps an expired lease it assigns the
///   next provider with a higher attempt; the stale provider's `submit` then reverts
///   (`NotProvider`). Two ways to carry that decision, one rule:
///   * `assign`, a transaction the assigner sends itself when it grants a lease: the
///     transaction's signature is the node's signature, so it costs no ecrecover and no
///     voucher calldata (~29k gas against ~34k for `bind`), and the provider is protected
///     (the requester can no longer cancel) before it starts work, without paying for it.
///   * An EIP-712 `Assignment` voucher the node hands the provider with the lease, which
///     anyone may relay (`bind`), or the provider sends with its result
///     (`submitWithVoucher`): the provider's way in when the node's own transaction has
///     not landed (an operator key short of gas, a node that went down after the lease).
///   Either way it buys zero extra storage and no on-chain lease bookkeeping. An assignment
///   never moves money: a malicious assigner can only choose who may submit; the requester
///   still accepts or disputes, and deadlines still refund.
/// - Squatting: anyone may fund any key first (e.g. 1 wei under someone else's job id).
///   The node's funding gate ignores a funding by anyone but the job's requester, and the
///   ASSIGNER may `reject` a funding no provider was ever bound to: the ether goes back to
///   whoever funded it and the key is freed for the real requester. The assigner cannot
///   send escrowed ether anywhere else, and cannot touch a job once it has been assigned.
/// - Arbitration default rule: a dispute not resolved within ARBITRATION_WINDOW is settled by
///   `finalize` exactly as an undisputed result (provider paid, minus the fee). A dispute is
///   a claim the requester must get upheld; otherwise disputing every result for free would
///   let a requester keep both the result and the money whenever the arbiter is slow.
/// - Payments: checks-effects-interactions plus a transient-storage reentrancy guard on
///   every function that moves ether. Refunds and payouts are pushed with a bounded gas
///   allowance (PUSH_GAS); when a push fails (a recipient contract that reverts or needs more
///   gas) the amount is credited to `owed[recipient]` and can be pulled with `withdraw`.
///   So a hostile recipient can neither re-enter nor block settlement of anyone else's job
///   (batch finalize included). Platform fees always accrue to `owed[FEE_RECIPIENT]`
///   (cheaper than a second push per job) and anyone may trigger `withdraw(FEE_RECIPIENT)`.
/// - No owner. Arbiter, assigner, fee rate and fee recipient are immutable. No function moves
///   escrowed ether except to the job's own requester, its bound provider or the fee
///   recipient, and only along the lifecycle above.
/// - Storage: two slots per job, deleted on settlement. Digests (dataset CID, result) are
///   bytes32 and live only in events, which is where the node's watcher and explorers read
///   them. Deleting both slots earns the SSTORE refund (4,800 gas per slot, capped at a fifth
///   of the transaction): about 4,300 gas less per settlement than keeping a status
///   tombstone. The price: after settlement a key forgets its last voucher attempt. A
///   voucher signed for an earlier funding of the same key could bind again only if the key
///   is funded anew before the voucher expires, and then any voucher with a higher attempt
///   rebinds over it, so the node's fencing still holds.
contract JobEscrow {
    // ------------------------------------------------------------------ types

    /// @dev Job status; None means not funded, or settled (the record is deleted).
    enum Status {
        None,
        Open,
        Bound,
        Submitted,
        Disputed
    }

    /// @dev How a job was settled (in `JobSettled`).
    enum Outcome {
        Accepted,
        Finalized,
        Resolved,
        DefaultRuling,
        Cancelled,
        Expired,
        Rejected
    }

    /// @dev slot 0: requester + amount; slot 1: provider + phase end + window + status + attempt.
    /// `phaseEnd` is the result deadline while Open/Bound, the end of the challenge window
    /// while Submitted, and the end of the arbitration window while Disputed.
    struct Job {
        address requester;
        uint96 amount;
        address provider;
        uint32 phaseEnd;
        uint32 challengeWindow;
        Status status;
        uint24 attempt;
    }

    // ------------------------------------------------------------------ constants

    uint256 public constant MAX_FEE_BPS = 1000; // 10 %
    uint256 public constant MAX_CHALLENGE_WINDOW = 30 days;
    uint256 public constant MAX_DEADLINE_AHEAD = 365 days;
    uint256 public constant PUSH_GAS = 50_000;

    bytes32 public constant ASSIGNMENT_TYPEHASH =
        keccak256("Assignment(bytes32 jobKey,address provider,uint256 attempt,uint256 expiry)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256(
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        );
    bytes32 private constant NAME_HASH = keccak256("DCM JobEscrow");
    bytes32 private constant VERSION_HASH = keccak256("1");
    uint256 private constant SECP256K1_HALF_N =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // ------------------------------------------------------------------ immutables

    address public immutable ARBITER;
    address public immutable ASSIGNER;
    address public immutable FEE_RECIPIENT;
    uint16 public immutable FEE_BPS;
    uint32 public immutable ARBITRATION_WINDOW;
    uint256 private immutable DEPLOY_CHAIN_ID;
    bytes32 private immutable DEPLOY_DOMAIN_SEPARATOR;

    // ------------------------------------------------------------------ state

    mapping(bytes32 jobKey => Job) private _jobs;
    /// @notice Ether credited to an account whose push payment failed, or accrued fees.
    mapping(address account => uint256) public owed;

    bool private transient _locked;

    // ------------------------------------------------------------------ events

    event JobFunded(
        bytes32 indexed jobKey,
        address indexed requester,
        uint256 amount,
        bytes32 datasetDigest,
        uint256 deadline,
        uint256 challengeWindow
    );
    event ProviderBound(bytes32 indexed jobKey, address indexed provider, uint256 attempt);
    event ProviderReleased(bytes32 indexed jobKey, address indexed provider, uint256 attempt);
    event ResultSubmitted(
        bytes32 indexed jobKey,
        address indexed provider,
        bytes32 resultDigest,
        uint256 challengeEnd
    );
    event JobDisputed(bytes32 indexed jobKey, address indexed requester, uint256 arbitrationEnd);
    /// @notice One event per settlement: who got what. `provider` is zero for refunds
    ///         of jobs never bound.
    event JobSettled(
        bytes32 indexed jobKey,
        address indexed requester,
        address indexed provider,
        Outcome outcome,
        uint256 providerAmount,
        uint256 requesterAmount,
        uint256 fee
    );
    event PaymentDeferred(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    // ------------------------------------------------------------------ errors

    error InvalidConfig();
    error ZeroAmount();
    error AmountTooLarge();
    error JobExists();
    error UnknownJob();
    error BadDeadline();
    error BadChallengeWindow();
    error WrongStatus(Status status);
    error NotRequester();
    error NotProvider();
    error NotArbiter();
    error NotAssigner();
    error AlreadyAssigned();
    error DeadlinePassed();
    error DeadlineNotReached();
    error VoucherExpired();
    error StaleAttempt();
    error BadSignature();
    error ChallengeWindowClosed();
    error ChallengeWindowOpen();
    error ArbitrationWindowClosed();
    error ArbitrationWindowOpen();
    error BadShare();
    error NothingOwed();
    error TransferFailed();
    error Reentrancy();

    // ------------------------------------------------------------------ setup

    /// @param arbiter resolves disputes (required)
    /// @param assigner signs assignment vouchers (the node's key; required)
    /// @param feeBps platform fee on provider payouts, at most MAX_FEE_BPS
    /// @param feeRecipient receives fees (required when feeBps > 0)
    /// @param arbitrationWindow seconds the arbiter has to rule (1 hour .. 90 days)
    constructor(
        address arbiter,
        address assigner,
        uint16 feeBps,
        address feeRecipient,
        uint32 arbitrationWindow
    ) {
        if (arbiter == address(0) || assigner == address(0)) revert InvalidConfig();
        if (feeBps > MAX_FEE_BPS) revert InvalidConfig();
        if (feeBps > 0 && feeRecipient == address(0)) revert InvalidConfig();
        if (arbitrationWindow == 0 || arbitrationWindow > 90 days) revert InvalidConfig();
        ARBITER = arbiter;
        ASSIGNER = assigner;
        FEE_BPS = feeBps;
        FEE_RECIPIENT = feeRecipient;
        ARBITRATION_WINDOW = arbitrationWindow;
        DEPLOY_CHAIN_ID = block.chainid;
        DEPLOY_DOMAIN_SEPARATOR = _domainSeparator();
    }

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    // ------------------------------------------------------------------ requester

    /// @notice Fund job `jobKey` with msg.value. `deadline` (unix seconds) is when the result
    ///         is due; `challengeWindow` (seconds) is how long the requester may dispute a
    ///         submitted result. `datasetDigest` is the sha2-256 digest inside the dataset
    ///         CID's multihash (emitted only).
    function fund(bytes32 jobKey, bytes32 datasetDigest, uint32 deadline, uint32 challengeWindow)
        external
        payable
    {
        if (msg.value == 0) revert ZeroAmount();
        if (msg.value > type(uint96).max) revert AmountTooLarge();
        if (deadline <= block.timestamp || deadline > block.timestamp + MAX_DEADLINE_AHEAD) {
            revert BadDeadline();
        }
        if (challengeWindow == 0 || challengeWindow > MAX_CHALLENGE_WINDOW) {
            revert BadChallengeWindow();
        }
        Job storage job = _jobs[jobKey];
        if (job.status != Status.None) revert JobExists();
        job.requester = msg.sender;
        job.amount = uint96(msg.value);
        job.phaseEnd = deadline;
        job.challengeWindow = challengeWindow;
        job.status = Status.Open;
        emit JobFunded(jobKey, msg.sender, msg.value, datasetDigest, deadline, challengeWindow);
    }

    /// @notice Refund an Open job (no provider bound) to its requester.
    function cancel(bytes32 jobKey) external nonReentrant {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Open) revert WrongStatus(job.status);
        if (msg.sender != job.requester) revert NotRequester();
        _refund(jobKey, job, Outcome.Cancelled);
    }

    /// @notice Accept the submitted result: the provider is paid at once.
    function accept(bytes32 jobKey) external nonReentrant {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Submitted) revert WrongStatus(job.status);
        if (msg.sender != job.requester) revert NotRequester();
        _payProvider(jobKey, job, Outcome.Accepted);
    }

    /// @notice Dispute the submitted result within the challenge window.
    function dispute(bytes32 jobKey) external {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Submitted) revert WrongStatus(job.status);
        if (msg.sender != job.requester) revert NotRequester();
        if (block.timestamp >= job.phaseEnd) revert ChallengeWindowClosed();
        uint32 end = uint32(block.timestamp) + ARBITRATION_WINDOW;
        job.phaseEnd = end;
        job.status = Status.Disputed;
        emit JobDisputed(jobKey, msg.sender, end);
    }

    // ------------------------------------------------------------------ provider

    /// @notice The assigner binds `provider` to an Open or Bound job for lease `attempt`,
    ///         which must exceed the job's last attempt (fencing).
    function assign(bytes32 jobKey, address provider, uint256 attempt) external {
        if (msg.sender != ASSIGNER) revert NotAssigner();
        Job storage job = _jobs[jobKey];
        _checkAssignment(job, provider, attempt, block.timestamp);
        _setProvider(job, jobKey, provider, attempt);
    }

    /// @notice Bind `provider` to an Open or Bound job with the node's assignment voucher
    ///         (EIP-712 `Assignment(jobKey, provider, attempt, expiry)` signed by ASSIGNER).
    ///         Anyone may send it. `attempt` must exceed the job's last attempt (fencing).
    function bind(
        bytes32 jobKey,
        address provider,
        uint256 attempt,
        uint256 expiry,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        Job storage job = _jobs[jobKey];
        _bind(job, jobKey, provider, attempt, expiry, v, r, s);
    }

    /// @notice Bind with a voucher naming msg.sender and submit the result in one
    ///         transaction (a provider that finished its leased work before binding on-chain
    ///         saves a transaction; until it binds, the requester may still cancel).
    function submitWithVoucher(
        bytes32 jobKey,
        uint256 attempt,
        uint256 expiry,
        uint8 v,
        bytes32 r,
        bytes32 s,
        bytes32 resultDigest
    ) external {
        Job storage job = _jobs[jobKey];
        _bind(job, jobKey, msg.sender, attempt, expiry, v, r, s);
        _submit(job, jobKey, resultDigest);
    }

    /// @notice The bound provider gives the job up; it is Open again for another voucher.
    function abandon(bytes32 jobKey) external {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Bound) revert WrongStatus(job.status);
        if (msg.sender != job.provider) revert NotProvider();
        job.provider = address(0);
        job.status = Status.Open;
        emit ProviderReleased(jobKey, msg.sender, job.attempt);
    }

    /// @notice The bound provider submits the result digest before the deadline; the
    ///         challenge window starts.
    function submit(bytes32 jobKey, bytes32 resultDigest) external {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Bound) revert WrongStatus(job.status);
        _submit(job, jobKey, resultDigest);
    }

    // ------------------------------------------------------------------ arbiter

    /// @notice Rule on a dispute: `providerShareBps` of the amount goes to the provider
    ///         (minus the fee on that share), the rest back to the requester.
    function resolve(bytes32 jobKey, uint16 providerShareBps) external nonReentrant {
        if (msg.sender != ARBITER) revert NotArbiter();
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Disputed) revert WrongStatus(job.status);
        if (block.timestamp >= job.phaseEnd) revert ArbitrationWindowClosed();
        if (providerShareBps > 10_000) revert BadShare();
        address requester = job.requester;
        address provider = job.provider;
        uint256 amount = job.amount;
        uint256 share = (amount * providerShareBps) / 10_000;
        uint256 fee = (share * FEE_BPS) / 10_000;
        uint256 toProvider = share - fee;
        uint256 toRequester = amount - share;
        _close(job);
        if (fee != 0) _credit(FEE_RECIPIENT, fee);
        emit JobSettled(
            jobKey, requester, provider, Outcome.Resolved, toProvider, toRequester, fee
        );
        if (toProvider != 0) _push(provider, toProvider);
        if (toRequester != 0) _push(requester, toRequester);
    }

    // ------------------------------------------------------------------ anyone

    /// @notice Pay the provider after the challenge window, or after the arbitration window
    ///         of an unresolved dispute (default rule).
    function finalize(bytes32 jobKey) external nonReentrant {
        Job storage job = _jobs[jobKey];
        Status status = job.status;
        if (status == Status.Submitted) {
            if (block.timestamp < job.phaseEnd) revert ChallengeWindowOpen();
            _payProvider(jobKey, job, Outcome.Finalized);
        } else if (status == Status.Disputed) {
            if (block.timestamp < job.phaseEnd) revert ArbitrationWindowOpen();
            _payProvider(jobKey, job, Outcome.DefaultRuling);
        } else {
            revert WrongStatus(status);
        }
    }

    /// @notice Finalize many jobs; keys not yet finalizable (or already settled) are
    ///         skipped, so concurrent keepers never make each other revert.
    /// @return settled how many jobs this call settled
    function finalizeBatch(bytes32[] calldata jobKeys)
        external
        nonReentrant
        returns (uint256 settled)
    {
        for (uint256 i; i < jobKeys.length; ++i) {
            Job storage job = _jobs[jobKeys[i]];
            Status status = job.status;
            if (status != Status.Submitted && status != Status.Disputed) continue;
            if (block.timestamp < job.phaseEnd) continue;
            _payProvider(
                jobKeys[i],
                job,
                status == Status.Submitted ? Outcome.Finalized : Outcome.DefaultRuling
            );
            ++settled;
        }
    }

    /// @notice Refund a job whose deadline passed without a result (Open or Bound).
    function refundExpired(bytes32 jobKey) external nonReentrant {
        Job storage job = _jobs[jobKey];
        Status status = job.status;
        if (status != Status.Open && status != Status.Bound) revert WrongStatus(status);
        if (block.timestamp < job.phaseEnd) revert DeadlineNotReached();
        _refund(jobKey, job, Outcome.Expired);
    }

    /// @notice The assigner returns a funding it will not honour (wrong funder, too little)
    ///         to whoever funded it, and frees the key, while no provider was ever bound.
    function reject(bytes32 jobKey) external nonReentrant {
        if (msg.sender != ASSIGNER) revert NotAssigner();
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Open) revert WrongStatus(job.status);
        if (job.attempt != 0) revert AlreadyAssigned();
        address requester = job.requester;
        uint256 amount = job.amount;
        _close(job);
        emit JobSettled(jobKey, requester, address(0), Outcome.Rejected, 0, amount, 0);
        _push(requester, amount);
    }

    /// @notice Pay `account` what it is owed (failed pushes, accrued fees). Anyone may call;
    ///         the ether only ever goes to `account`.
    function withdraw(address account) external nonReentrant {
        uint256 amount = owed[account];
        if (amount == 0) revert NothingOwed();
        owed[account] = 0;
        emit Withdrawn(account, amount);
        (bool ok, ) = payable(account).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ------------------------------------------------------------------ views

    /// @notice The job's on-chain record (all zero before funding and after settlement).
    function getJob(bytes32 jobKey)
        external
        view
        returns (
            address requester,
            uint256 amount,
            address provider,
            uint256 phaseEnd,
            uint256 challengeWindow,
            Status status,
            uint256 attempt
        )
    {
        Job storage job = _jobs[jobKey];
        return (
            job.requester,
            job.amount,
            job.provider,
            job.phaseEnd,
            job.challengeWindow,
            job.status,
            job.attempt
        );
    }

    /// @notice The EIP-712 domain separator of assignment vouchers.
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == DEPLOY_CHAIN_ID ? DEPLOY_DOMAIN_SEPARATOR : _domainSeparator();
    }

    // ------------------------------------------------------------------ internals

    function _bind(
        Job storage job,
        bytes32 jobKey,
        address provider,
        uint256 attempt,
        uint256 expiry,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) private {
        _checkAssignment(job, provider, attempt, expiry);
        bytes32 digest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                domainSeparator(),
                keccak256(abi.encode(ASSIGNMENT_TYPEHASH, jobKey, provider, attempt, expiry))
            )
        );
        if (uint256(s) > SECP256K1_HALF_N) revert BadSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0) || signer != ASSIGNER) revert BadSignature();
        _setProvider(job, jobKey, provider, attempt);
    }

    /// @dev The rules of every assignment, in this order (a voucher's expiry is checked
    ///      after the deadline; `assign` passes the block time, which never fails it).
    function _checkAssignment(Job storage job, address provider, uint256 attempt, uint256 expiry)
        private
        view
    {
        Status status = job.status;
        if (status != Status.Open && status != Status.Bound) revert WrongStatus(status);
        if (block.timestamp >= job.phaseEnd) revert DeadlinePassed();
        if (block.timestamp > expiry) revert VoucherExpired();
        if (attempt <= job.attempt || attempt > type(uint24).max) revert StaleAttempt();
        if (provider == address(0)) revert NotProvider();
    }

    function _setProvider(Job storage job, bytes32 jobKey, address provider, uint256 attempt)
        private
    {
        address previous = job.provider;
        if (previous != address(0)) emit ProviderReleased(jobKey, previous, job.attempt);
        job.provider = provider;
        job.attempt = uint24(attempt);
        job.status = Status.Bound;
        emit ProviderBound(jobKey, provider, attempt);
    }

    /// @dev Caller checked status == Bound.
    function _submit(Job storage job, bytes32 jobKey, bytes32 resultDigest) private {
        if (msg.sender != job.provider) revert NotProvider();
        if (block.timestamp >= job.phaseEnd) revert DeadlinePassed();
        uint32 end = uint32(block.timestamp) + job.challengeWindow;
        job.phaseEnd = end;
        job.status = Status.Submitted;
        emit ResultSubmitted(jobKey, msg.sender, resultDigest, end);
    }

    function _domainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this))
        );
    }

    function _payProvider(bytes32 jobKey, Job storage job, Outcome outcome) private {
        address requester = job.requester;
        address provider = job.provider;
        uint256 amount = job.amount;
        uint256 fee = (amount * FEE_BPS) / 10_000;
        _close(job);
        if (fee != 0) _credit(FEE_RECIPIENT, fee);
        emit JobSettled(jobKey, requester, provider, outcome, amount - fee, 0, fee);
        _push(provider, amount - fee);
    }

    function _refund(bytes32 jobKey, Job storage job, Outcome outcome) private {
        address requester = job.requester;
        address provider = job.provider;
        uint256 amount = job.amount;
        _close(job);
        emit JobSettled(jobKey, requester, provider, outcome, 0, amount, 0);
        _push(requester, amount);
    }

    /// @dev Effects before interactions: delete the record (both slots zero, status None).
    function _close(Job storage job) private {
        job.requester = address(0);
        job.amount = 0;
        job.provider = address(0);
        job.phaseEnd = 0;
        job.challengeWindow = 0;
        job.status = Status.None;
        job.attempt = 0;
    }

    function _credit(address account, uint256 amount) private {
        owed[account] += amount;
    }

    function _push(address to, uint256 amount) private {
        bool ok;
        // No return data is copied: a recipient cannot grief with a large revert payload.
        assembly ("memory-safe") {
            ok := call(PUSH_GAS, to, amount, 0, 0, 0, 0)
        }
        if (!ok) {
            _credit(to, amount);
            emit PaymentDeferred(to, amount);
        }
    }
}
