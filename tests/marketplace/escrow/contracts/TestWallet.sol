// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice A contract requester/recipient for the escrow's tests: its owner makes it call
///         anything (fund, withdrawTo...); on receiving ether it either refuses it or makes
///         one configured call (e.g. re-funding an escrow key from inside a refund), and
///         bubbles that call's revert.
contract TestWallet {
    address private immutable owner;
    bool public refuseEther;
    address public hookTarget;
    uint256 public hookValue;
    bytes public hookData;

    constructor() payable {
        owner = msg.sender;
    }

    function exec(address to, uint256 value, bytes calldata data) external payable {
        require(msg.sender == owner, "owner");
        (bool ok, bytes memory ret) = to.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    function configure(bool refuse, address target, uint256 value, bytes calldata data) external {
        require(msg.sender == owner, "owner");
        refuseEther = refuse;
        hookTarget = target;
        hookValue = value;
        hookData = data;
    }

    receive() external payable {
        if (refuseEther) revert("no ether");
        if (hookTarget != address(0)) {
            (bool ok, bytes memory ret) = hookTarget.call{value: hookValue}(hookData);
            if (!ok) {
                assembly {
                    revert(add(ret, 32), mload(ret))
                }
            }
        }
    }
}
