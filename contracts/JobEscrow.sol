// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title JobEscrow: holds a compute job's reward until the result is accepted, finalized,
///        arbitrated or refunded.
/// @notice One escrow per marketplace node (its ASSIGNER is that node's key). The ARBITER,
///         who rules on disputes, is a party that is not the node.
///
/// Job keys
///   jobKey = requester (bytes 0-19) | generation (bytes 20-23) | job number (bytes 24-31)
///   (Python: `marketplace.escrow.job_key(job, requester, generation)`). Only the requester
///   a key names may fund it, so nobody can squat another requester's key, now or in the
///   future, and a deposit always belongs to the requester its key names. The node picks a
///   new generation for every funding it asks for (a retry, a refused deposit), so an old
///   funding call, an old voucher or a late node transaction names a key that no longer
///   holds that job's money. The number and generation are mostly zero bytes (4 gas each
///   in calldata against 16 for a non-zero byte).
///
/// Money rules (each state: who may act, and what happens when nobody does)
///   | state     | who may act                                         | on silence            |
///   |-----------|-----------------------------------------------------|-----------------------|
///   | None      | the requester named in the key: fund -> Open        | -                     |
///   | Open      | requester: cancel (refund); assigner: assign ->     | deadline: anyone may  |
///   |           | Bound, refund (to the requester); a provider named  | refundExpired (to the |
///   |           | by the assigner's voucher: bind / submitWithVoucher | requester)            |
///   | Bound     | provider: submit -> Submitted, abandon -> Open;     | deadline: anyone may  |
///   |           | assigner: unassign (its lease ended) -> Open        | refundExpired         |
///   | Submitted | requester: accept (pays the provider), dispute;     | challenge window over:|
///   |           | assigner: dispute (freezes; moves no money)         | anyone may finalize:  |
///   |           |                                                     | the provider is paid  |
///   | Disputed  | arbiter: resolve (provider share in bps, the rest   | arbitration window    |
///   |           | to the requester); requester: accept                | over: anyone may      |
///   |           |                                                     | finalize: the         |
///   |           |                                                     | requester is refunded |
///   |           |                                                     | in full               |
///   | owed      | anyone: withdraw(account) pays account;             | stays owed            |
///   |           | account: withdrawTo(to)                             |                       |
///   Every settlement deletes the record (status None again); `JobSettled` says how. Ether
///   only ever leaves towards the job's requester, its bound provider or the fee recipient.
///
/// Design decisions
/// - Binding is the node's decision, not a first-come on-chain claim. The node decides who
///   works on a job (leases with expiry, reaping, re-assignment with a fencing attempt
///   counter), so the chain accepts assignments only from the ASSIGNER fixed at deployment,
///   for an Open job, at an attempt above the job's last one, before the deadline. When a
///   lease ends the node sends `unassign(jobKey, attempt)`: the job is Open again and the
///   old holder can no longer submit; the next lease's `assign` (higher attempt) follows.
///   Binding the provider already bound at the same attempt again is a no-op, so a provider's
///   `submitWithVoucher` racing the node's own `assign` for that lease succeeds. Two ways to
///   carry the decision, one rule:
///   * `assign`, a transaction the assigner sends itself when it grants a lease (no
///     ecrecover, no voucher calldata), binding the provider before it starts work;
///   * an EIP-712 `Assignment(jobKey, provider, attempt, funding, expiry)` voucher the node
///     hands the provider with the lease, relayed by anyone (`bind`) or sent with the result
///     (`submitWithVoucher`). `funding` is the deposit's tag (the low 16 bits of the funding
///     block's timestamp, kept in the record): a voucher binds only the deposit it was
///     signed for, although settlement deletes the record and resets the attempt counter.
///     Two fundings of one key share a tag only 65,536 s (18.2 h) apart or more, while the
///     node's vouchers live an hour.
/// - What the assigner cannot do. It never binds itself, the arbiter, the requester or
///   address(0); it cannot rebind a job someone is bound to (only unassign it at that
///   lease's attempt); the only money it can move is a deposit back to its own requester
///   (`refund`). So a leaked operator key can choose who works, no more: the requester's
///   dispute and the arbiter still stand between a bad result and the money.
/// - Disputes. The requester disputes a result within the challenge window; the assigner may
///   dispute too (it moves no money, it only freezes it for the arbiter), so the node can
///   protect a requester when its own check fails: an on-chain digest that differs from
///   what the lease holder reported, a result from a provider whose lease had ended, a
///   result nobody reported. The arbiter rules within ARBITRATION_WINDOW (at least an hour).
///   Silence never pays the side under dispute: once the window is over `finalize` refunds
///   the requester in full (DefaultRuling). The requester may still accept a disputed
///   result (withdrawing its own dispute, or overruling the node's).
/// - Payments: checks-effects-interactions plus a transient-storage reentrancy guard on
///   `fund` and on every function that moves ether. Refunds and payouts are pushed with a
///   bounded gas allowance (PUSH_GAS); when a push fails (a recipient contract that reverts,
///   needs more gas, or tries to re-enter) the amount is credited to `owed[recipient]`
///   (`PaymentDeferred`) and can be pulled with `withdraw` or `withdrawTo`. A hostile
///   recipient can neither re-enter nor block anyone else's settlement (batch finalize
///   included). Platform fees always accrue to `owed[FEE_RECIPIENT]`; anyone may trigger
///   `withdraw(FEE_RECIPIENT)`.
/// - No owner. Arbiter, assigner, fee rate and fee recipient are immutable; the arbiter must
///   differ from the assigner.
/// - Storage: two slots per job, deleted on settlement (the SSTORE refund: about 4,300 gas
///   less per settlement than a tombstone). The requester is not stored: it is in the key.
///   Digests (dataset CID, result) are bytes32 and live only in events.
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
        Refunded
    }

    /// @dev slot 0: amount; slot 1: provider + phase end + window + status + attempt +
    /// funding tag. `phaseEnd` is the result deadline while Open/Bound, the end of the
    /// challenge window while Submitted, and the end of the arbitration window while
    /// Disputed.
    struct Job {
        uint256 amount;
        address provider;
        uint32 phaseEnd;
        uint24 challengeWindow;
        Status status;
        uint16 attempt;
        uint16 funding;
    }

    // ------------------------------------------------------------------ constants

    uint256 public constant MAX_FEE_BPS = 1000; // 10 %
    uint256 public constant MAX_CHALLENGE_WINDOW = 30 days;
    uint256 public constant MAX_DEADLINE_AHEAD = 365 days;
    uint256 public constant MIN_ARBITRATION_WINDOW = 1 hours;
    uint256 public constant MAX_ARBITRATION_WINDOW = 90 days;
    uint256 public constant PUSH_GAS = 50_000;

    bytes32 public constant ASSIGNMENT_TYPEHASH = keccak256(
        "Assignment(bytes32 jobKey,address provider,uint256 attempt,uint256 funding,uint256 expiry)"
    );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256(
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        );
    bytes32 private constant NAME_HASH = keccak256("DCM JobEscrow");
    bytes32 private constant VERSION_HASH = keccak256("2");
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
    /// @notice `by` is the requester or the assigner.
    event JobDisputed(bytes32 indexed jobKey, address indexed by, uint256 arbitrationEnd);
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
    /// @notice A push to `account` failed: `amount` of job `jobKey` waits in `owed`.
    event PaymentDeferred(bytes32 indexed jobKey, address indexed account, uint256 amount);
    event Withdrawn(address indexed account, address indexed to, uint256 amount);

    // ------------------------------------------------------------------ errors

    error InvalidConfig();
    error ZeroAmount();
    error JobExists();
    error BadDeadline();
    error BadChallengeWindow();
    error WrongStatus(Status status);
    error NotRequester();
    error NotProvider();
    error NotArbiter();
    error NotAssigner();
    error ForbiddenProvider();
    error DeadlinePassed();
    error DeadlineNotReached();
    error VoucherExpired();
    error WrongFunding();
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

    /// @param arbiter resolves disputes (required; not the assigner)
    /// @param assigner binds providers and signs assignment vouchers (the node's key; required)
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
        if (arbiter == assigner) revert InvalidConfig();
        if (feeBps > MAX_FEE_BPS) revert InvalidConfig();
        if (feeBps > 0 && feeRecipient == address(0)) revert InvalidConfig();
        if (arbitrationWindow < MIN_ARBITRATION_WINDOW) revert InvalidConfig();
        if (arbitrationWindow > MAX_ARBITRATION_WINDOW) revert InvalidConfig();
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

    /// @notice Fund job `jobKey` with msg.value; the key must name msg.sender as its
    ///         requester. `deadline` (unix seconds) is when the result is due;
    ///         `challengeWindow` (seconds) is how long the requester may dispute a submitted
    ///         result. `datasetDigest` is the sha2-256 digest inside the dataset CID's
    ///         multihash (emitted only).
    function fund(bytes32 jobKey, bytes32 datasetDigest, uint32 deadline, uint32 challengeWindow)
        external
        payable
    {
        // Never entered from inside a payment (it makes no call itself: checking suffices).
        if (_locked) revert Reentrancy();
        if (msg.value == 0) revert ZeroAmount();
        if (_requester(jobKey) != msg.sender) revert NotRequester();
        if (deadline <= block.timestamp || deadline > block.timestamp + MAX_DEADLINE_AHEAD) {
            revert BadDeadline();
        }
        if (challengeWindow == 0 || challengeWindow > MAX_CHALLENGE_WINDOW) {
            revert BadChallengeWindow();
        }
        Job storage job = _jobs[jobKey];
        if (job.status != Status.None) revert JobExists();
        job.amount = msg.value;
        job.phaseEnd = deadline;
        job.challengeWindow = uint24(challengeWindow);
        job.status = Status.Open;
        job.funding = uint16(block.timestamp);
        emit JobFunded(jobKey, msg.sender, msg.value, datasetDigest, deadline, challengeWindow);
    }

    /// @notice Refund an Open job (no provider bound) to its requester.
    function cancel(bytes32 jobKey) external nonReentrant {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Open) revert WrongStatus(job.status);
        if (msg.sender != _requester(jobKey)) revert NotRequester();
        _refund(jobKey, job, Outcome.Cancelled);
    }

    /// @notice Accept the submitted (or disputed) result: the provider is paid at once.
    function accept(bytes32 jobKey) external nonReentrant {
        Job storage job = _jobs[jobKey];
        Status status = job.status;
        if (status != Status.Submitted && status != Status.Disputed) revert WrongStatus(status);
        if (msg.sender != _requester(jobKey)) revert NotRequester();
        _payProvider(jobKey, job, Outcome.Accepted);
    }

    /// @notice Dispute the submitted result within the challenge window (the requester, or
    ///         the assigner on the requester's behalf): the arbiter rules.
    function dispute(bytes32 jobKey) external {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Submitted) revert WrongStatus(job.status);
        if (msg.sender != _requester(jobKey) && msg.sender != ASSIGNER) revert NotRequester();
        if (block.timestamp >= job.phaseEnd) revert ChallengeWindowClosed();
        uint32 end = uint32(block.timestamp) + ARBITRATION_WINDOW;
        job.phaseEnd = end;
        job.status = Status.Disputed;
        emit JobDisputed(jobKey, msg.sender, end);
    }

    // ------------------------------------------------------------------ assigner

    /// @notice The assigner binds `provider` to an Open job for lease `attempt`, which must
    ///         exceed the job's last attempt (fencing). Binding the provider already bound at
    ///         this attempt is a no-op.
    function assign(bytes32 jobKey, address provider, uint256 attempt) external {
        if (msg.sender != ASSIGNER) revert NotAssigner();
        Job storage job = _jobs[jobKey];
        if (_alreadyBound(job, provider, attempt)) return;
        _checkAssignment(job, jobKey, provider, attempt, block.timestamp);
        _setProvider(job, jobKey, provider, attempt);
    }

    /// @notice The lease `attempt` ended: the assigner releases its binding and the job is
    ///         Open again (for the next lease's assignment, or a refund).
    function unassign(bytes32 jobKey, uint256 attempt) external {
        if (msg.sender != ASSIGNER) revert NotAssigner();
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Bound) revert WrongStatus(job.status);
        if (attempt != job.attempt) revert StaleAttempt();
        _release(job, jobKey);
    }

    /// @notice The assigner returns an Open deposit to its requester: a deposit the node
    ///         refused (terms, a key it retired), or a job it ended without a result.
    function refund(bytes32 jobKey) external nonReentrant {
        if (msg.sender != ASSIGNER) revert NotAssigner();
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Open) revert WrongStatus(job.status);
        _refund(jobKey, job, Outcome.Refunded);
    }

    // ------------------------------------------------------------------ provider

    /// @notice Bind `provider` to an Open job with the node's assignment voucher (EIP-712
    ///         `Assignment(jobKey, provider, attempt, funding, expiry)` signed by ASSIGNER).
    ///         Anyone may send it.
    function bind(
        bytes32 jobKey,
        address provider,
        uint256 attempt,
        uint256 funding,
        uint256 expiry,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        Job storage job = _jobs[jobKey];
        if (_alreadyBound(job, provider, attempt)) return;
        _bind(job, jobKey, provider, attempt, funding, expiry, v, r, s);
    }

    /// @notice Bind with a voucher naming msg.sender and submit the result in one
    ///         transaction (a provider whose binding has not landed yet saves one).
    function submitWithVoucher(
        bytes32 jobKey,
        uint256 attempt,
        uint256 funding,
        uint256 expiry,
        uint8 v,
        bytes32 r,
        bytes32 s,
        bytes32 resultDigest
    ) external {
        Job storage job = _jobs[jobKey];
        if (!_alreadyBound(job, msg.sender, attempt)) {
            _bind(job, jobKey, msg.sender, attempt, funding, expiry, v, r, s);
        }
        _submit(job, jobKey, resultDigest);
    }

    /// @notice The bound provider gives the job up; it is Open again.
    function abandon(bytes32 jobKey) external {
        Job storage job = _jobs[jobKey];
        if (job.status != Status.Bound) revert WrongStatus(job.status);
        if (msg.sender != job.provider) revert NotProvider();
        _release(job, jobKey);
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
        address requester = _requester(jobKey);
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
        if (toProvider != 0) _push(jobKey, provider, toProvider);
        if (toRequester != 0) _push(jobKey, requester, toRequester);
    }

    // ------------------------------------------------------------------ anyone

    /// @notice After the challenge window: pay the provider. After the arbitration window of
    ///         an unresolved dispute: refund the requester in full (default ruling).
    function finalize(bytes32 jobKey) external nonReentrant {
        Job storage job = _jobs[jobKey];
        Status status = job.status;
        if (status == Status.Submitted) {
            if (block.timestamp < job.phaseEnd) revert ChallengeWindowOpen();
            _payProvider(jobKey, job, Outcome.Finalized);
        } else if (status == Status.Disputed) {
            if (block.timestamp < job.phaseEnd) revert ArbitrationWindowOpen();
            _refund(jobKey, job, Outcome.DefaultRuling);
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
            bytes32 jobKey = jobKeys[i];
            Job storage job = _jobs[jobKey];
            Status status = job.status;
            if (status != Status.Submitted && status != Status.Disputed) continue;
            if (block.timestamp < job.phaseEnd) continue;
            if (status == Status.Submitted) {
                _payProvider(jobKey, job, Outcome.Finalized);
            } else {
                _refund(jobKey, job, Outcome.DefaultRuling);
            }
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

    /// @notice Pay `account` what it is owed (failed pushes, accrued fees). Anyone may call;
    ///         the ether only ever goes to `account`.
    function withdraw(address account) external nonReentrant {
        _withdraw(account, account);
    }

    /// @notice Pay what msg.sender is owed to `to` (an account that cannot receive ether
    ///         itself, e.g. a contract without a payable fallback, names another).
    function withdrawTo(address to) external nonReentrant {
        _withdraw(msg.sender, to);
    }

    // ------------------------------------------------------------------ views

    /// @notice The job's on-chain record (all zero before funding and after settlement);
    ///         `requester` is read from the key.
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
            uint256 attempt,
            uint256 funding
        )
    {
        Job storage job = _jobs[jobKey];
        return (
            job.status == Status.None ? address(0) : _requester(jobKey),
            job.amount,
            job.provider,
            job.phaseEnd,
            job.challengeWindow,
            job.status,
            job.attempt,
            job.funding
        );
    }

    /// @notice The EIP-712 domain separator of assignment vouchers.
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == DEPLOY_CHAIN_ID ? DEPLOY_DOMAIN_SEPARATOR : _domainSeparator();
    }

    // ------------------------------------------------------------------ internals

    function _requester(bytes32 jobKey) private pure returns (address) {
        return address(bytes20(jobKey));
    }

    function _alreadyBound(Job storage job, address provider, uint256 attempt)
        private
        view
        returns (bool)
    {
        return job.status == Status.Bound && job.provider == provider && job.attempt == attempt;
    }

    function _bind(
        Job storage job,
        bytes32 jobKey,
        address provider,
        uint256 attempt,
        uint256 funding,
        uint256 expiry,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) private {
        _checkAssignment(job, jobKey, provider, attempt, expiry);
        if (funding != job.funding) revert WrongFunding();
        bytes32 digest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                domainSeparator(),
                keccak256(
                    abi.encode(ASSIGNMENT_TYPEHASH, jobKey, provider, attempt, funding, expiry)
                )
            )
        );
        if (uint256(s) > SECP256K1_HALF_N) revert BadSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0) || signer != ASSIGNER) revert BadSignature();
        _setProvider(job, jobKey, provider, attempt);
    }

    /// @dev The rules of every assignment, in this order (a voucher's expiry is checked
    ///      after the deadline; `assign` passes the block time, which never fails it; a
    ///      voucher's funding tag is checked next, by `_bind`).
    function _checkAssignment(
        Job storage job,
        bytes32 jobKey,
        address provider,
        uint256 attempt,
        uint256 expiry
    ) private view {
        Status status = job.status;
        if (status != Status.Open) revert WrongStatus(status);
        if (block.timestamp >= job.phaseEnd) revert DeadlinePassed();
        if (block.timestamp > expiry) revert VoucherExpired();
        if (attempt <= job.attempt || attempt > type(uint16).max) revert StaleAttempt();
        if (
            provider == address(0) || provider == ASSIGNER || provider == ARBITER
                || provider == _requester(jobKey)
        ) revert ForbiddenProvider();
    }

    function _setProvider(Job storage job, bytes32 jobKey, address provider, uint256 attempt)
        private
    {
        job.provider = provider;
        job.attempt = uint16(attempt);
        job.status = Status.Bound;
        emit ProviderBound(jobKey, provider, attempt);
    }

    function _release(Job storage job, bytes32 jobKey) private {
        address provider = job.provider;
        job.provider = address(0);
        job.status = Status.Open;
        emit ProviderReleased(jobKey, provider, job.attempt);
    }

    /// @dev Caller checked status == Bound (or bound it in this transaction).
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
        address provider = job.provider;
        uint256 amount = job.amount;
        uint256 fee = (amount * FEE_BPS) / 10_000;
        _close(job);
        if (fee != 0) _credit(FEE_RECIPIENT, fee);
        emit JobSettled(jobKey, _requester(jobKey), provider, outcome, amount - fee, 0, fee);
        _push(jobKey, provider, amount - fee);
    }

    function _refund(bytes32 jobKey, Job storage job, Outcome outcome) private {
        address requester = _requester(jobKey);
        address provider = job.provider;
        uint256 amount = job.amount;
        _close(job);
        emit JobSettled(jobKey, requester, provider, outcome, 0, amount, 0);
        _push(jobKey, requester, amount);
    }

    /// @dev Effects before interactions: delete the record (both slots zero, status None).
    function _close(Job storage job) private {
        job.amount = 0;
        job.provider = address(0);
        job.phaseEnd = 0;
        job.challengeWindow = 0;
        job.status = Status.None;
        job.attempt = 0;
        job.funding = 0;
    }

    function _credit(address account, uint256 amount) private {
        owed[account] += amount;
    }

    function _push(bytes32 jobKey, address to, uint256 amount) private {
        bool ok;
        // No return data is copied: a recipient cannot grief with a large revert payload.
        assembly ("memory-safe") {
            ok := call(PUSH_GAS, to, amount, 0, 0, 0, 0)
        }
        if (!ok) {
            _credit(to, amount);
            emit PaymentDeferred(jobKey, to, amount);
        }
    }

    function _withdraw(address account, address to) private {
        uint256 amount = owed[account];
        if (amount == 0) revert NothingOwed();
        owed[account] = 0;
        emit Withdrawn(account, to, amount);
        (bool ok, ) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
